// Package h2 speaks HTTP/2 for Outpost. The server side is Outpost's own
// session loop (conn.go): it reads frames, decodes header blocks with
// x/net's hpack straight into httphead requests, runs the engine inline
// for requests without a body, so that a cache hit costs no goroutine and
// no allocation, and batches the frames of a loop turn into one write.
// A request that blocks (an origin fetch, a request body, a wait for flow
// control credit) moves to a goroutine of its own, and the loop goes on.
// The client side sends upstream requests over x/net's HTTP/2 transport
// (TLS or cleartext h2c) for gRPC and h2 origins.
//
// Requests are held to RFC 9113: section 8.2's field rules (lowercase
// names, no connection-specific fields, TE only "trailers"), section 8.3's
// pseudo-header rules, Content-Length against the DATA received. Abuse is
// bounded: a header list over Limits.MaxHeaderBytes is decoded without
// being kept (an HPACK bomb costs no memory) and answered 431, streams
// over Limits.MaxConcurrentStreams are refused, and every connection
// draws on a budget for frames that do no work (PING, SETTINGS,
// RST_STREAM, PRIORITY, CONTINUATION, empty DATA): a client that floods
// them, rapid reset among them, gets GOAWAY ENHANCE_YOUR_CALM (flood.go).
package h2

import (
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/proxy"
)

// Limits bound what one HTTP/2 connection may use. Zero fields take the
// defaults.
type Limits struct {
	// MaxConcurrentStreams bounds the streams open at once; more are
	// refused. Default 100.
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a decoded header list, which bounds what
	// indexed HPACK references can expand into. Default 64 KiB.
	MaxHeaderBytes  int
	IdleTimeout     time.Duration // default 60s
	ReadIdleTimeout time.Duration // ping a connection with streams open and nothing read this long; default 30s
	// WriteTimeout ends a connection whose client takes no bytes for
	// this long (a slow reader); default 60s.
	WriteTimeout time.Duration
}

// hpackTable is the HPACK dynamic table size the decoder allows: the
// RFC 9113 default. The client cannot make Outpost keep a larger one.
const hpackTable = 4096

// Handler serves one stream's request. pc is the stream's reusable engine
// state: nil on a stream's first request; the handler keeps what it makes
// there.
type Handler = func(ctx context.Context, sess proxy.Session, pc **proxy.Ctx) error

// Server serves HTTP/2 connections. It is safe for concurrent use.
type Server struct {
	// Log receives protocol errors clients cause; nil means slog.Default.
	Log *slog.Logger
	// ProtocolErrors counts protocol errors clients caused: malformed
	// requests, streams over the limit, oversized header lists, errors
	// that end a connection.
	ProtocolErrors atomic.Int64
	// Floods counts connections ended for sending too many frames that
	// do no work.
	Floods atomic.Int64

	lim Limits
}

// NewServer returns a server with the given limits.
func NewServer(lim Limits) *Server {
	if lim.MaxConcurrentStreams == 0 {
		lim.MaxConcurrentStreams = 100
	}
	if lim.MaxHeaderBytes == 0 {
		lim.MaxHeaderBytes = 64 << 10
	}
	if lim.IdleTimeout == 0 {
		lim.IdleTimeout = 60 * time.Second
	}
	if lim.ReadIdleTimeout == 0 {
		lim.ReadIdleTimeout = 30 * time.Second
	}
	if lim.WriteTimeout == 0 {
		lim.WriteTimeout = 60 * time.Second
	}
	return &Server{lim: lim}
}

// countError counts a protocol error of the given kind.
func (s *Server) countError(kind string) {
	s.ProtocolErrors.Add(1)
	s.log().Debug("HTTP/2 protocol error", "type", kind)
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// ServeConn serves one HTTP/2 connection until it ends; conn must still
// hold the client preface. When drain is done the connection gets GOAWAY
// and ends once its open streams have finished. ja4 is the client's TLS
// fingerprint, "" for cleartext; altSvc, when set, is sent as the Alt-Svc
// field of responses that have none.
func (s *Server) ServeConn(drain context.Context, conn net.Conn, client netip.AddrPort, tlsState *tls.ConnectionState, ja4, altSvc string, serve Handler) {
	c := newConn(s, conn, client, tlsState, ja4, serve)
	c.altSvc = []byte(altSvc)
	c.run(drain)
}
