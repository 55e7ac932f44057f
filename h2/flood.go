package h2

import (
	"crypto/tls"
	"encoding/binary"
	"net"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 frames that make the server work without doing any for the client
// draw on a per-connection budget: a burst of h2Burst, refilled at h2Refill
// a second. A client that runs it dry is flooding, and its connection ends.
// Legitimate clients send such frames by the handful (a SETTINGS at the
// start, a keep-alive PING, a RST_STREAM per cancelled call).
const (
	h2Burst  = 1000
	h2Refill = 100
)

// Frame types (RFC 9113 section 6) and the flags the watch looks at.
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	framePriority     = 0x2
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameContinuation = 0x9

	flagAck       = 0x1 // SETTINGS and PING
	flagEndStream = 0x1 // DATA and HEADERS
)

// errFlood ends a flooding connection. As a ConnectionError it makes
// x/net/http2 send GOAWAY with ENHANCE_YOUR_CALM before closing.
var errFlood = http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)

// h2Watch passes an HTTP/2 connection's bytes through unchanged, reading
// only the frame headers as they go by, and ends the connection when the
// client spends the budget. x/net/http2 bounds the rest (header list size,
// early resets, queued control frames); what it leaves open is a client
// that sends cheap frames as fast as it can: PING and SETTINGS floods,
// RST_STREAM and PRIORITY floods, and CONTINUATION or DATA frames that
// carry nothing.
type h2Watch struct {
	net.Conn
	srv *Server

	preface int     // bytes of the client preface still to pass
	hdr     [9]byte // the frame header being read
	hn      int     // bytes of hdr read so far
	skip    int     // payload bytes of the current frame still to pass
	tokens  float64
	last    time.Time
	flooded bool
}

// tlsWatch is an h2Watch over TLS; x/net/http2 checks the connection
// state (version, cipher suite) through ConnectionState.
type tlsWatch struct {
	*h2Watch
	state *tls.ConnectionState
}

func (t tlsWatch) ConnectionState() tls.ConnectionState { return *t.state }

// watch wraps conn in an h2Watch, keeping its TLS state visible.
func (s *Server) watch(conn net.Conn, tlsState *tls.ConnectionState) net.Conn {
	w := &h2Watch{Conn: conn, srv: s, preface: len(http2.ClientPreface), tokens: h2Burst, last: time.Now()}
	if tlsState != nil {
		return tlsWatch{w, tlsState}
	}
	return w
}

func (w *h2Watch) Read(p []byte) (int, error) {
	if w.flooded {
		return 0, errFlood
	}
	n, err := w.Conn.Read(p)
	if cost := w.scan(p[:n]); cost > 0 && !w.spend(cost) {
		w.flooded = true
		w.srv.Floods.Add(1)
		w.srv.log().Info("HTTP/2 flood: connection closed", "client", w.Conn.RemoteAddr().String())
		return 0, errFlood
	}
	return n, err
}

// scan walks b, frame header by frame header, and returns the cost of the
// frames whose headers completed in it.
func (w *h2Watch) scan(b []byte) int {
	cost := 0
	for len(b) > 0 {
		switch {
		case w.preface > 0:
			k := min(w.preface, len(b))
			w.preface -= k
			b = b[k:]
		case w.skip > 0:
			k := min(w.skip, len(b))
			w.skip -= k
			b = b[k:]
		default:
			k := copy(w.hdr[w.hn:], b)
			w.hn += k
			b = b[k:]
			if w.hn == len(w.hdr) {
				w.hn = 0
				length := int(binary.BigEndian.Uint32(w.hdr[:4]) >> 8)
				w.skip = length
				cost += frameCost(w.hdr[3], w.hdr[4], length)
			}
		}
	}
	return cost
}

// frameCost is 1 for a frame that does no work for the client, else 0.
func frameCost(typ, flags byte, length int) int {
	switch typ {
	case framePing, frameSettings:
		if flags&flagAck == 0 {
			return 1
		}
	case frameRSTStream, framePriority, frameContinuation:
		return 1
	case frameData, frameHeaders:
		if length == 0 && flags&flagEndStream == 0 {
			return 1
		}
	}
	return 0
}

// spend takes n tokens after refilling for the time passed, and reports
// whether there were enough.
func (w *h2Watch) spend(n int) bool {
	now := time.Now()
	w.tokens = min(h2Burst, w.tokens+now.Sub(w.last).Seconds()*h2Refill)
	w.last = now
	w.tokens -= float64(n)
	return w.tokens >= 0
}
