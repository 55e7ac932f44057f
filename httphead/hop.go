package httphead

// hopByHop lists the fields that describe one connection, not the message
// (RFC 9110 section 7.6.1, and HTTP2-Settings of an h2c upgrade, RFC 7540
// section 3.2.1); a proxy must not forward them.
var hopByHop = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
	"HTTP2-Settings",
}

// IsHopByHop reports whether name is a hop-by-hop field.
func IsHopByHop(name []byte) bool {
	for _, h := range hopByHop {
		if EqualFold(name, h) {
			return true
		}
	}
	return false
}

// RemoveHopByHop removes the hop-by-hop fields and every field named in a
// Connection field. It does not allocate.
func (h *Header) RemoveHopByHop() {
	if h.Has("Connection") {
		// Connection fields are never dropped in this pass, so they stay
		// visible to namedInConnection while DelFunc compacts the list.
		h.DelFunc(func(name, _ []byte) bool {
			return !EqualFold(name, "Connection") && h.namedInConnection(name)
		})
	}
	h.DelFunc(func(name, _ []byte) bool { return IsHopByHop(name) })
}

func (h *Header) namedInConnection(name []byte) bool {
	named := false
	h.Values("Connection", func(v []byte) bool {
		named = ListHas(v, b2s(name))
		return !named
	})
	return named
}

// notInTrailers lists the fields RFC 9110 section 6.5.1 says a trailer
// section must not carry: framing, routing, request modifiers,
// authentication, response control data and what says how to process the
// content. A recipient that merged them into the head (as many
// frameworks do) would let a client set, after every check of the head,
// what the head was checked for.
var notInTrailers = [...]string{
	"Content-Length", "Transfer-Encoding", "Trailer", "Host",
	"Cache-Control", "Expect", "Max-Forwards", "Pragma", "Range", "TE",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range",
	"Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate",
	"Cookie", "Set-Cookie",
	"Age", "Date", "Expires", "Location", "Retry-After", "Vary", "Warning",
	"Content-Encoding", "Content-Type", "Content-Range",
}

// RemoveNotInTrailers drops the fields a trailer section must not carry
// (notInTrailers) and the hop-by-hop ones, and returns how many it
// dropped.
func (h *Header) RemoveNotInTrailers() int {
	return h.DelFunc(func(name, _ []byte) bool {
		if IsHopByHop(name) {
			return true
		}
		for _, n := range notInTrailers {
			if EqualFold(name, n) {
				return true
			}
		}
		return false
	})
}
