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
