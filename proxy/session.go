package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net/netip"

	"github.com/outpost-edge/outpost/httphead"
)

// Session is one request/response exchange with a downstream client. The
// server implements it for each protocol: HTTP/1.1 on its own codec, HTTP/2
// on its own session loop (package h2). The engine calls WriteHead at most once, then
// Write any number of times, then Finish once.
type Session interface {
	// Request returns the request head; valid until Finish.
	Request() *httphead.Request
	// Body returns the request body (empty reader when there is none).
	Body() io.Reader
	// ClientAddr returns the client's address, after PROXY protocol.
	ClientAddr() netip.AddrPort
	// TLS returns the TLS state, or nil for cleartext.
	TLS() *tls.ConnectionState
	// WriteHead sends the status line and headers. The session adds the
	// framing: resp.ContentLength >= 0 is sent as Content-Length, -1 as a
	// chunked (or, for HTTP/2, DATA-framed) body. It removes any framing
	// fields already in resp.Header. resp.TransferCodings, when set, are
	// named in Transfer-Encoding before chunked; the engine sets them
	// only for HTTP/1.1 clients.
	WriteHead(resp *httphead.Response) error
	// Write sends body bytes.
	Write(p []byte) (int, error)
	// Finish ends the response, sending trailers when the protocol can.
	Finish(trailers *httphead.Header) error
	// Upgrade returns the raw connection after a 101 Switching Protocols
	// response has been written, for protocols that tunnel over it
	// (WebSocket). Sessions that cannot return ErrUpgradeUnsupported.
	Upgrade() (io.ReadWriteCloser, error)
}

// ErrUpgradeUnsupported is returned by Session.Upgrade on protocols that
// have no connection upgrade (HTTP/2).
var ErrUpgradeUnsupported = errors.New("proxy: connection upgrade not supported on this protocol")

// HeadFlusher is implemented by sessions that hold a written head back
// until the first body bytes, to send both in one write. The engine
// flushes the head before it waits on a body with nothing ready, so a
// client sees the head of a streamed response (server-sent events, a
// long poll) when the origin sends it.
type HeadFlusher interface {
	FlushHead() error
}

// ReadyBody is implemented by bodies that can tell whether their next
// Read returns without waiting on the network: bytes are already here,
// or the end is.
type ReadyBody interface {
	Ready() bool
}

// MemBody is a response body held in memory: its Reads never wait, so
// the head leaves with its bytes.
type MemBody struct{ bytes.Reader }

// NewMemBody returns b as a response body.
func NewMemBody(b []byte) *MemBody {
	m := &MemBody{}
	m.Reset(b)
	return m
}

// Ready implements ReadyBody.
func (*MemBody) Ready() bool { return true }

// Close implements io.Closer.
func (*MemBody) Close() error { return nil }

// BodyReady reports whether r's next Read returns at once, for bodies
// that wrap another.
func BodyReady(r io.Reader) bool {
	rb, ok := r.(ReadyBody)
	return ok && rb.Ready()
}

// Early is implemented by sessions whose request may arrive in TLS early
// data (HTTP/3 0-RTT), which an attacker can replay.
type Early interface {
	Early() bool
}

// Fingerprinted is implemented by sessions whose listener computes the
// client's TLS fingerprint (JA4).
type Fingerprinted interface {
	JA4() string
}

// Trailered is implemented by upstream bodies that carry trailers (gRPC's
// grpc-status travels in HTTP/2 trailers). Trailers is valid after EOF.
type Trailered interface {
	Trailers() *httphead.Header
}
