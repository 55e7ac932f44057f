package h2

import (
	"strconv"

	"golang.org/x/net/http2/hpack"

	"github.com/outpost-edge/outpost/httphead"
)

// headBlock is the header block being decoded: the fields go straight
// into the stream's httphead.Request as the HPACK decoder emits them, and
// the pseudo-header fields into pseudo, checked as RFC 9113 section 8.3
// asks.
type headBlock struct {
	id        uint32
	open      bool    // the block has begun and not ended: only CONTINUATION may follow
	st        *stream // nil: the block is decoded only to keep HPACK in step
	trailers  bool
	end       bool // END_STREAM was set on the HEADERS frame
	refuse    http2ErrCode
	size      int // decoded header list size (RFC 9113 section 6.5.2)
	tooBig    bool
	malformed string // why the block is malformed (RFC 9113 section 8.1.1)
	regular   bool   // a regular field has been seen: no pseudo-header may follow

	pseudo                          []byte
	method, path, scheme, authority span
	seen                            uint8
}

// span is a half-open range of headBlock.pseudo; end 0 means absent.
type span struct{ start, end int }

const (
	seenMethod = 1 << iota
	seenPath
	seenScheme
	seenAuthority
)

func (h *headBlock) get(s span) []byte { return h.pseudo[s.start:s.end] }

// field takes one decoded field (hpack's emit function).
func (c *conn) field(f hpack.HeaderField) {
	h := &c.hb
	h.size += len(f.Name) + len(f.Value) + 32
	if h.size > c.srv.lim.MaxHeaderBytes {
		// Decoding goes on, to keep the dynamic table in step, but
		// nothing more is kept: an HPACK bomb costs no memory.
		h.tooBig = true
		c.dec.SetEmitEnabled(false)
		return
	}
	if h.malformed != "" || h.st == nil {
		return
	}
	name, value := f.Name, f.Value
	if len(name) > 0 && name[0] == ':' {
		h.pseudoField(name, value)
		return
	}
	h.regular = true
	if reason := checkField(name, value); reason != "" {
		h.malformed = reason
		return
	}
	if h.trailers {
		h.st.trailers.AddString(name, value)
		return
	}
	h.st.req.Header.AddString(name, value)
}

// pseudoField records a request pseudo-header field: each at most once,
// all before the regular fields, none in trailers (RFC 9113 section
// 8.3). Extended CONNECT's :protocol is not enabled, so it is malformed
// like any other unknown pseudo-header.
func (h *headBlock) pseudoField(name, value string) {
	if h.regular || h.trailers {
		h.malformed = "pseudo-header field out of place"
		return
	}
	var bit uint8
	var s *span
	switch name {
	case ":method":
		bit, s = seenMethod, &h.method
	case ":path":
		bit, s = seenPath, &h.path
	case ":scheme":
		bit, s = seenScheme, &h.scheme
	case ":authority":
		bit, s = seenAuthority, &h.authority
	default:
		h.malformed = "unknown pseudo-header field"
		return
	}
	if h.seen&bit != 0 {
		h.malformed = "duplicate pseudo-header field"
		return
	}
	h.seen |= bit
	s.start = len(h.pseudo)
	h.pseudo = append(h.pseudo, value...)
	s.end = len(h.pseudo)
}

// checkField applies RFC 9113 section 8.2: names in lowercase, values
// of the bytes HTTP/1.1 accepts (so no NUL, CR or LF) without whitespace
// at either end, no connection-specific
// field, and TE only as "trailers".
func checkField(name, value string) string {
	if name == "" {
		return "empty field name"
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c >= 'A' && c <= 'Z' || !httphead.IsTokenChar(c) {
			return "invalid field name"
		}
	}
	for i := 0; i < len(value); i++ {
		if !httphead.IsFieldByte(value[i]) {
			return "invalid field value"
		}
	}
	if n := len(value); n > 0 && (isSpace(value[0]) || isSpace(value[n-1])) {
		return "whitespace around field value"
	}
	switch name {
	case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
		return "connection-specific field"
	case "te":
		if value != "trailers" {
			return "TE other than trailers"
		}
	}
	return ""
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

// finishRequest turns a decoded request header block into the stream's
// request; it returns why the request is malformed, or "".
func (h *headBlock) finishRequest(st *stream, scheme []byte) string {
	if h.malformed != "" {
		return h.malformed
	}
	req := &st.req
	method := h.get(h.method)
	connect := string(method) == "CONNECT"
	switch {
	case h.seen&seenMethod == 0:
		return "missing :method"
	case connect && (h.seen&(seenScheme|seenPath) != 0 || h.seen&seenAuthority == 0):
		return "CONNECT with :scheme or :path, or without :authority"
	case !connect && (h.seen&seenScheme == 0 || h.seen&seenPath == 0):
		return "missing :scheme or :path"
	case !connect && h.path.end == h.path.start:
		return "empty :path"
	}
	host := h.get(h.authority)
	if h.seen&seenAuthority == 0 {
		host = req.Header.Peek("host")
	}
	target := h.get(h.path)
	if connect {
		target = host
	}
	// The scheme is how the client reached Outpost, as over HTTP/1.1.
	req.SetLine(method, target, host, scheme)
	req.ProtoMajor, req.ProtoMinor = 2, 0
	req.ContentLength = -1
	if cl := req.Header.Peek("content-length"); cl != nil {
		n, ok := httphead.ParseDecimal(cl)
		if !ok || req.Header.Count("content-length") > 1 {
			return "invalid content-length"
		}
		req.ContentLength = n
	}
	if h.end {
		if req.ContentLength > 0 {
			return "content-length without a body"
		}
		req.ContentLength = 0
	}
	req.Expect100 = !h.end && httphead.EqualFold(req.Header.Peek("expect"), "100-continue")
	if req.Header.Count("cookie") > 1 {
		joinCookies(&req.Header, &st.scratch)
	}
	return ""
}

// joinCookies makes the cookie fields one, as HTTP/1.1 origins expect
// (RFC 9113 section 8.2.3).
func joinCookies(h *httphead.Header, scratch *[]byte) {
	b := (*scratch)[:0]
	h.Values("cookie", func(v []byte) bool {
		if len(b) > 0 {
			b = append(b, "; "...)
		}
		b = append(b, v...)
		return true
	})
	h.Del("cookie")
	h.Add([]byte("cookie"), b)
	*scratch = b
}

// HPACK encoding of responses. Outpost never adds to its encoder's dynamic
// table: every field is a literal without indexing, its name indexed in
// the static table when it is there (RFC 7541 section 6.2.2), no Huffman
// coding. A response head is then a few copies, with no state to keep in
// step and nothing to allocate; what it costs in bytes is small next to a
// body.

// staticNames maps a lowercase field name to its first index in the HPACK
// static table (RFC 7541 appendix A).
var staticNames = func() map[string]uint8 {
	names := []string{":authority", ":method", ":method", ":path", ":path", ":scheme", ":scheme",
		":status", ":status", ":status", ":status", ":status", ":status", ":status",
		"accept-charset", "accept-encoding", "accept-language", "accept-ranges", "accept",
		"access-control-allow-origin", "age", "allow", "authorization", "cache-control",
		"content-disposition", "content-encoding", "content-language", "content-length",
		"content-location", "content-range", "content-type", "cookie", "date", "etag", "expect",
		"expires", "from", "host", "if-match", "if-modified-since", "if-none-match", "if-range",
		"if-unmodified-since", "last-modified", "link", "location", "max-forwards",
		"proxy-authenticate", "proxy-authorization", "range", "referer", "refresh", "retry-after",
		"server", "set-cookie", "strict-transport-security", "transfer-encoding", "user-agent",
		"vary", "via", "www-authenticate"}
	m := make(map[string]uint8, len(names))
	for i, n := range names {
		if _, ok := m[n]; !ok {
			m[n] = uint8(i + 1)
		}
	}
	return m
}()

// staticStatus holds the :status values with an indexed representation.
var staticStatus = map[int]byte{200: 8, 204: 9, 206: 10, 304: 11, 400: 12, 404: 13, 500: 14}

// appendStatus appends the :status field.
func appendStatus(dst []byte, status int) []byte {
	if i, ok := staticStatus[status]; ok {
		return append(dst, 0x80|i)
	}
	dst = append(dst, 0x08) // literal without indexing, name :status
	dst = append(dst, 3)
	return strconv.AppendInt(dst, int64(status), 10)
}

// appendField appends name (lowercased) and value as a literal without
// indexing. lower is scratch space for the lowercase name.
func appendField(dst []byte, name, value []byte, lower *[]byte) []byte {
	l := append((*lower)[:0], name...)
	for i, c := range l {
		if 'A' <= c && c <= 'Z' {
			l[i] = c + 'a' - 'A'
		}
	}
	*lower = l
	if i, ok := staticNames[string(l)]; ok {
		dst = appendInt(dst, 4, 0x00, uint64(i))
	} else {
		dst = append(dst, 0x00)
		dst = appendInt(dst, 7, 0x00, uint64(len(l)))
		dst = append(dst, l...)
	}
	dst = appendInt(dst, 7, 0x00, uint64(len(value)))
	return append(dst, value...)
}

// appendInt appends v as an HPACK integer with an n-bit prefix, the high
// bits of the first byte taken from first (RFC 7541 section 5.1).
func appendInt(dst []byte, n uint, first byte, v uint64) []byte {
	max := uint64(1)<<n - 1
	if v < max {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(max))
	v -= max
	for v >= 128 {
		dst = append(dst, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(dst, byte(v))
}

// skipResponseField reports whether a response field stays out of an
// HTTP/2 head: hop-by-hop fields, which HTTP/2 forbids (RFC 9113 section
// 8.2.2), and Content-Length, which the session sets itself.
func skipResponseField(name []byte) bool {
	return httphead.IsHopByHop(name) || httphead.EqualFold(name, "Content-Length")
}
