// Package h3 serves HTTP/3 on quic-go: its http3 package speaks the
// protocol and each request becomes a proxy.Session, so HTTP/3 requests go
// through the same checks, limits, engine and cache as HTTP/1.1 and
// HTTP/2, and the protection layer sees them alike: connections count
// against the server's connection limits (in total and per client), and
// the client's JA4 is computed from its QUIC ClientHello. The QUIC side is
// held to limits of its own: 0-RTT is off unless a route accepts early
// data, and then only safe methods on such routes are served early (a
// replayed request could repeat its effect; proxy.Early), concurrent streams are bounded per connection, and
// when many connections are open QUIC's address validation (a Retry round
// trip) makes a client prove it owns its address before it costs a
// handshake.
package h3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"

	"github.com/outpost-edge/outpost/proxy"
)

// Limits bound HTTP/3 connections. Zero fields take the defaults.
type Limits struct {
	// MaxStreams bounds the requests open at once on a connection.
	// Default 100.
	MaxStreams int64
	// MaxHeaderBytes bounds a request head. Default 64 KiB.
	MaxHeaderBytes int
	// IdleTimeout closes a connection idle this long. Default 60s.
	IdleTimeout time.Duration
	// RetryAbove is the number of open connections past which a new
	// client must first prove its address with a Retry. Default 1000.
	RetryAbove int64
	// Admit, when set, counts a new connection against the server's
	// connection limits (in total and per client, as for TCP); a
	// connection it refuses is closed before its handshake.
	Admit func(client netip.AddrPort) (release func(), ok bool)
	// Allow0RTT accepts requests in 0-RTT early data; the engine still
	// refuses them (425) on routes without EarlyData and for unsafe
	// methods. Default false: no early data at all.
	Allow0RTT bool
	// Fingerprint, when set, computes the client's fingerprint (JA4)
	// from its QUIC ClientHello; the requests of the connection report it.
	Fingerprint func(*tls.ClientHelloInfo) string
}

// Handler serves one request; pc is as for package h2 (nil each time:
// an HTTP/3 request keeps no engine state of its own).
type Handler = func(ctx context.Context, sess proxy.Session, pc **proxy.Ctx) error

// Server serves HTTP/3 on one UDP socket.
type Server struct {
	h    *http3.Server
	tr   *quic.Transport
	ln   *quic.EarlyListener
	open atomic.Int64 // QUIC connections open
	// AltSvc is the Alt-Svc field value that advertises this server to
	// clients of the TCP listener on the same port.
	AltSvc string
}

// Listen starts serving HTTP/3 on pc with tlsConf (whose certificates,
// GetCertificate included, are those of the TCP listener).
func Listen(pc net.PacketConn, tlsConf *tls.Config, lim Limits, serve Handler) (*Server, error) {
	if lim.MaxStreams == 0 {
		lim.MaxStreams = 100
	}
	if lim.MaxHeaderBytes == 0 {
		lim.MaxHeaderBytes = 64 << 10
	}
	if lim.IdleTimeout == 0 {
		lim.IdleTimeout = 60 * time.Second
	}
	if lim.RetryAbove == 0 {
		lim.RetryAbove = 1000
	}
	s := &Server{}
	s.tr = &quic.Transport{
		Conn:                pc,
		VerifySourceAddress: func(net.Addr) bool { return s.open.Load() >= lim.RetryAbove },
		ConnContext:         s.connContext(lim),
	}
	if lim.Fingerprint != nil {
		tlsConf = fingerprinting(tlsConf, lim.Fingerprint)
	}
	qc := &quic.Config{
		Allow0RTT:          lim.Allow0RTT,
		MaxIncomingStreams: lim.MaxStreams,
		MaxIdleTimeout:     lim.IdleTimeout,
	}
	ln, err := s.tr.ListenEarly(http3.ConfigureTLSConfig(tlsConf), qc)
	if err != nil {
		return nil, fmt.Errorf("h3: listen on %s: %w", pc.LocalAddr(), err)
	}
	s.ln = ln
	port := pc.LocalAddr().(*net.UDPAddr).Port
	s.AltSvc = `h3=":` + strconv.Itoa(port) + `"; ma=86400`
	s.h = &http3.Server{
		Handler:        handler(serve),
		MaxHeaderBytes: lim.MaxHeaderBytes,
		IdleTimeout:    lim.IdleTimeout,
	}
	go s.h.ServeListener(ln)
	return s, nil
}

// Shutdown sends GOAWAY on every connection, lets open requests finish
// until ctx ends, and closes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.h.Shutdown(ctx)
	s.ln.Close()
	s.tr.Close()
	return err
}

var errTooMany = errors.New("h3: too many connections")

// connContext admits a new connection and gives it a place for its
// fingerprint: the fingerprint lives and dies with the connection's
// context, so a failed handshake leaves nothing behind.
func (s *Server) connContext(lim Limits) func(context.Context, *quic.ClientInfo) (context.Context, error) {
	return func(ctx context.Context, ci *quic.ClientInfo) (context.Context, error) {
		if lim.Admit != nil {
			client, _ := netip.ParseAddrPort(ci.RemoteAddr.String())
			release, ok := lim.Admit(client)
			if !ok {
				return nil, errTooMany
			}
			context.AfterFunc(ctx, release)
		}
		s.open.Add(1)
		context.AfterFunc(ctx, func() { s.open.Add(-1) })
		return context.WithValue(ctx, helloKey{}, &hello{}), nil
	}
}

type helloKey struct{}

// hello carries a connection's fingerprint from its handshake to its
// requests.
type hello struct{ ja4 string }

// fingerprinting returns cfg with a ClientHello hook that records the
// fingerprint in the connection's hello.
func fingerprinting(cfg *tls.Config, print func(*tls.ClientHelloInfo) string) *tls.Config {
	cfg = cfg.Clone()
	next := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(info *tls.ClientHelloInfo) (*tls.Config, error) {
		if h, ok := info.Context().Value(helloKey{}).(*hello); ok {
			h.ja4 = print(info)
		}
		if next != nil {
			return next(info)
		}
		return nil, nil
	}
	return cfg
}

// handler turns each HTTP/3 request into a session for serve.
func handler(serve Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sess := newSession(w, r)
		var pc *proxy.Ctx
		err := serve(r.Context(), sess, &pc)
		if err != nil && sess.wrote {
			// Reset the stream: the client must not take a truncated
			// body for a whole one.
			panic(http.ErrAbortHandler)
		}
	})
}
