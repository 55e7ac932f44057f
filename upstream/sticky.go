package upstream

import (
	"bytes"
	"strconv"
	"time"
)

// Sticky pins a client to one server with a cookie that the edge sets and
// honours while that server stays usable. The cookie value is the server's
// ID in hex: it names the server without revealing its address, and stays
// valid across reloads and DNS changes while the address is the same.
//
//	id, ok := st.FromCookieHeader(req.Header.Peek("Cookie"))
//	if ok { it.Prefer(id) }
//	s, _ := it.Next() ...
//	if st.NeedsCookie(id, ok, s) { resp.Header.Add("Set-Cookie", st.AppendSetCookie(buf, s)) }
type Sticky struct {
	// Cookie is the cookie name. Default "outpost_upstream".
	Cookie string
	// Path is the cookie's Path attribute. Default "/".
	Path string
	// MaxAge makes the cookie persistent; zero means a session cookie.
	MaxAge time.Duration
	// Secure adds the Secure attribute.
	Secure bool
}

func (st Sticky) name() string {
	if st.Cookie == "" {
		return "outpost_upstream"
	}
	return st.Cookie
}

// FromCookieHeader finds the sticky cookie in a Cookie header value and
// returns the server ID it carries; ok is false when the cookie is absent
// or malformed.
func (st Sticky) FromCookieHeader(h []byte) (id uint64, ok bool) {
	name := st.name()
	for len(h) > 0 {
		var pair []byte
		pair, h, _ = bytes.Cut(h, []byte{';'})
		k, v, found := bytes.Cut(bytes.TrimSpace(pair), []byte{'='})
		if found && string(k) == name {
			return parseID(v)
		}
	}
	return 0, false
}

func parseID(v []byte) (uint64, bool) {
	if len(v) != 16 {
		return 0, false
	}
	var id uint64
	for _, c := range v {
		var d byte
		switch {
		case '0' <= c && c <= '9':
			d = c - '0'
		case 'a' <= c && c <= 'f':
			d = c - 'a' + 10
		default:
			return 0, false
		}
		id = id<<4 | uint64(d)
	}
	return id, true
}

// NeedsCookie reports whether the response must set the cookie: the
// request carried none (ok false) or one naming another server than s.
func (st Sticky) NeedsCookie(id uint64, ok bool, s *Server) bool {
	return !ok || id != s.ID()
}

// AppendSetCookie appends a Set-Cookie header value pinning the client to s.
func (st Sticky) AppendSetCookie(dst []byte, s *Server) []byte {
	dst = append(dst, st.name()...)
	dst = append(dst, '=')
	dst = appendID(dst, s.ID())
	dst = append(dst, "; Path="...)
	if st.Path == "" {
		dst = append(dst, '/')
	} else {
		dst = append(dst, st.Path...)
	}
	if st.MaxAge > 0 {
		dst = append(dst, "; Max-Age="...)
		dst = strconv.AppendInt(dst, int64(st.MaxAge/time.Second), 10)
	}
	dst = append(dst, "; HttpOnly; SameSite=Lax"...)
	if st.Secure {
		dst = append(dst, "; Secure"...)
	}
	return dst
}

func appendID(dst []byte, id uint64) []byte {
	const hex = "0123456789abcdef"
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, hex[id>>uint(shift)&0xf])
	}
	return dst
}
