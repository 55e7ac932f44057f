package guard

import (
	"bytes"
	"slices"

	"github.com/outpost-edge/outpost/httphead"
)

// maxCookies bounds the cookies sorted on the stack; a request with more
// still gets a correct fingerprint, at the cost of an allocation.
const maxCookies = 64

// AppendJA4H appends the JA4H fingerprint (FoxIO's HTTP client fingerprint)
// of a request head:
//
//	ge11cr13enus_<names>_<cookie names>_<cookie pairs>
//
// method (two letters, lowercase), version, "c" if a Cookie field is present,
// "r" if a Referer is, the number of other fields (99 at most), the first
// four characters of the first Accept-Language tag without "-" ("0"-padded,
// "0000" without one), then the truncated SHA-256 of the field names in
// arrival order and original case (Cookie and Referer left out), of the
// cookie names sorted, and of the "name=value" cookie pairs sorted. A hash
// of an empty list is twelve zeros.
//
// Cookies are read from every Cookie field (HTTP/2 splits them); empty
// pieces such as a trailing ";" are skipped. It allocates nothing for
// requests of ordinary size.
//
// JA4H is licensed by FoxIO under the FoxIO License 1.1, which allows
// internal use but restricts selling it as part of a product or service;
// see the licensing note in the package documentation.
func AppendJA4H(dst []byte, req *httphead.Request) []byte {
	h := &req.Header
	dst = appendMethod(dst, req.Method)
	dst = append(dst, byte('0'+req.ProtoMajor%10), byte('0'+req.ProtoMinor%10))
	dst = appendFlag(dst, h.Has("Cookie"), 'c')
	dst = appendFlag(dst, h.Has("Referer"), 'r')

	var text [2048]byte
	names := text[:0]
	count := 0
	for i := range h.Len() {
		name, _ := h.Field(i)
		if len(name) == 0 || name[0] == ':' || hasPrefixFold(name, "cookie") || httphead.EqualFold(name, "referer") {
			continue
		}
		if count > 0 {
			names = append(names, ',')
		}
		names = append(names, name...)
		count++
	}
	dst = appendCount(dst, count)
	dst = appendLanguage(dst, h.Peek("Accept-Language"))
	dst = append(dst, '_')
	dst = appendTruncatedHash(dst, names, count == 0)
	return appendCookieHashes(dst, h, text[:0])
}

func appendMethod(dst, method []byte) []byte {
	for i := range min(len(method), 2) {
		dst = append(dst, lower(method[i]))
	}
	return dst
}

func appendFlag(dst []byte, set bool, c byte) []byte {
	if set {
		return append(dst, c)
	}
	return append(dst, 'n')
}

// appendLanguage appends the first four characters of the first language
// tag of an Accept-Language value, "-" removed, lowercased, "0"-padded.
func appendLanguage(dst, v []byte) []byte {
	n := 0
	for _, c := range v {
		if c == ',' || c == ';' || n == 4 {
			break
		}
		if c != '-' {
			dst = append(dst, lower(c))
			n++
		}
	}
	for ; n < 4; n++ {
		dst = append(dst, '0')
	}
	return dst
}

// appendCookieHashes appends "_<names hash>_<pairs hash>" for the cookies of
// h, using scratch for the hashed text.
func appendCookieHashes(dst []byte, h *httphead.Header, scratch []byte) []byte {
	var pairBuf [maxCookies][]byte
	pairs := pairBuf[:0]
	h.Values("Cookie", func(v []byte) bool {
		for piece := range bytes.SplitSeq(v, []byte(";")) {
			if p := httphead.TrimOWS(piece); len(p) > 0 {
				pairs = append(pairs, p)
			}
		}
		return true
	})
	if len(pairs) == 0 {
		return append(dst, "_000000000000_000000000000"...)
	}
	// Sorting the names and sorting the pairs can differ ("a=1" vs "a-b"),
	// so each list is sorted on its own.
	slices.SortFunc(pairs, func(a, b []byte) int { return bytes.Compare(cookieName(a), cookieName(b)) })
	text := scratch
	for i, p := range pairs {
		if i > 0 {
			text = append(text, ',')
		}
		text = append(text, cookieName(p)...)
	}
	dst = append(dst, '_')
	dst = appendTruncatedHash(dst, text, false)
	slices.SortFunc(pairs, bytes.Compare)
	text = scratch
	for i, p := range pairs {
		if i > 0 {
			text = append(text, ',')
		}
		text = append(text, p...)
	}
	dst = append(dst, '_')
	return appendTruncatedHash(dst, text, false)
}

// cookieName returns the name of a "name=value" cookie pair, trimmed.
func cookieName(pair []byte) []byte {
	if i := bytes.IndexByte(pair, '='); i >= 0 {
		return httphead.TrimOWS(pair[:i])
	}
	return pair
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasPrefixFold reports whether b starts with the lowercase ASCII prefix,
// ignoring case.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && httphead.EqualFold(b[:len(prefix)], prefix)
}
