// Package server runs Outpost's listeners: it accepts connections (plain,
// TLS, PROXY protocol), tells HTTP/1.1 from HTTP/2 (ALPN over TLS, the
// connection preface for cleartext h2c), hands each request to the proxy
// engine through a proxy.Session, and stops gracefully: on Shutdown it stops
// accepting, lets in-flight requests finish and closes idle connections.
//
// It also holds off clients that would tie it up: connections over
// Limits.MaxConns in total or MaxConnsPerIP for one client (an IPv4
// address or an IPv6 /64) are closed on arrival; a new connection must
// start its request within the header timeout and finish the head within
// that time of its first byte, however it trickles in (slowloris); a
// request body must keep Limits.MinBodyRate on average once its grace has
// passed (slow POST: 408); a client that does not take response bytes
// within the write timeout is cut, and its socket reset so the kernel
// drops what was queued for it. The h2 package bounds HTTP/2 abuse.
//
// The engine and the limits it runs with form one Runtime, swapped
// atomically by Swap on a config reload: a connection picks up the current
// Runtime at the start of each request, so a reload never mixes two configs
// within a request and never drops a connection.
package server

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/outpost-edge/outpost/httphead"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/limit"
	"github.com/outpost-edge/outpost/proxy"
)

// Timeouts bound each stage of a connection. Zero fields take the defaults.
type Timeouts struct {
	Header   time.Duration // reading a request head; default 10s
	Idle     time.Duration // waiting for the next request on a keep-alive connection; default 60s
	BodyRead time.Duration // between reads of a request body; default 60s
	Write    time.Duration // between writes of a response; default 60s
	Request  time.Duration // a whole exchange, head to last byte; 0 means no limit
	// BodyRateGrace is how long a request body may arrive slower than
	// Limits.MinBodyRate before the rate is enforced; default 10s.
	BodyRateGrace time.Duration
}

// Limits bound what a client may send and hold.
type Limits struct {
	MaxHeaderBytes int   // request line plus header fields; default 64 KiB
	MaxHeaders     int   // header fields; default 100
	MaxBodyBytes   int64 // request body; 0 means no limit
	MaxConns       int   // open client connections in total; 0 means no limit
	MaxConnsPerIP  int   // open connections per client (IPv4 address, IPv6 /64); 0 means no limit
	// MinBodyRate is the slowest average rate, in bytes per second, at which
	// a request body may arrive once Timeouts.BodyRateGrace has passed: a
	// slower client gets 408 and the connection closes. Time the server
	// spends not reading (the origin is slow to take the upload) does not
	// count. Default 1024; negative turns the check off.
	MinBodyRate int
}

// Runtime is what requests are served with; it is replaced whole on reload.
type Runtime struct {
	Engine   *proxy.Engine
	Timeouts Timeouts
	Limits   Limits
	// Paths is how request paths are normalised, on every protocol.
	Paths httphead.PathPolicy
}

type runtime struct {
	engine   *proxy.Engine
	timeouts Timeouts
	limits   Limits
	paths    httphead.PathPolicy
}

func newRuntime(r Runtime) *runtime {
	t := r.Timeouts
	t.Header = orDefault(t.Header, 10*time.Second)
	t.Idle = orDefault(t.Idle, 60*time.Second)
	t.BodyRead = orDefault(t.BodyRead, 60*time.Second)
	t.Write = orDefault(t.Write, 60*time.Second)
	t.BodyRateGrace = orDefault(t.BodyRateGrace, 10*time.Second)
	l := r.Limits
	if l.MinBodyRate == 0 {
		l.MinBodyRate = 1024
	}
	return &runtime{engine: r.Engine, timeouts: t, limits: l, paths: r.Paths}
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Listener describes how one listening socket is served.
type Listener struct {
	// TLS, when set, terminates TLS; ALPN "h2" selects HTTP/2.
	TLS *tls.Config
	// H2C accepts cleartext HTTP/2 with prior knowledge.
	H2C bool
	// Fingerprint, when set with TLS, computes a client fingerprint (JA4)
	// from each ClientHello; sessions report it to the engine.
	Fingerprint func(*tls.ClientHelloInfo) string
	// AltSvc, when set with TLS, is sent as the Alt-Svc field of every
	// response (HTTP/3 on the same port) that has none.
	AltSvc string
}

// Server serves connections with the current Runtime.
type Server struct {
	// Log receives connection-level events (rejected requests, panics).
	Log *slog.Logger
	// H2 serves HTTP/2 connections; nil refuses HTTP/2.
	H2 H2Server

	rt       atomic.Pointer[runtime]
	draining atomic.Bool
	conns    atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	lns      map[net.Listener]struct{}
	active   map[net.Conn]*connState // open connections: at most Limits.MaxConns (plus those refused on arrival)
	ctx      context.Context         // cancelled when Shutdown gives up waiting
	cancel   context.CancelFunc
	drain    context.Context // cancelled when Shutdown starts
	// reqCtx is the base of HTTP/1.1 requests: never cancelled, so an
	// upstream exchange needs no cancellation watch (two allocations and
	// a registration per request). A forced stop closes the connections
	// instead. timeouts.request gives a request a deadline of its own.
	reqCtx context.Context
	stop   context.CancelFunc

	// perIP counts open connections per client key, without limits of
	// its own; a key goes with its last connection, so it holds at most
	// one entry per open connection.
	perIP limit.InFlight

	// Rejected counts requests refused by the HTTP/1.1 codec.
	Rejected atomic.Int64
	// RefusedConns counts connections closed on arrival because MaxConns
	// or MaxConnsPerIP was reached.
	RefusedConns atomic.Int64
	// SlowClients counts requests cut because the client sent its head or
	// body too slowly (408) or did not take the response in time.
	SlowClients atomic.Int64
}

// H2Server serves one HTTP/2 connection until it ends. The h2 package
// implements it.
type H2Server interface {
	// ServeConn returns when the connection ends; when drain is done it
	// sends GOAWAY, lets open streams finish and returns. ja4 is the
	// client's TLS fingerprint, altSvc the Alt-Svc field value to send
	// ("" for none). serve runs each request; pc is the stream's
	// reusable engine state (nil on its first request).
	ServeConn(drain context.Context, conn net.Conn, client netip.AddrPort, tlsState *tls.ConnectionState, ja4, altSvc string, serve func(ctx context.Context, sess proxy.Session, pc **proxy.Ctx) error)
}

// New returns a server running rt.
func New(rt Runtime, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{Log: log, lns: map[net.Listener]struct{}{}, active: map[net.Conn]*connState{}}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.drain, s.stop = context.WithCancel(s.ctx)
	s.reqCtx = context.WithoutCancel(s.ctx)
	s.rt.Store(newRuntime(rt))
	return s
}

// Swap replaces the runtime; requests already running finish on the old one.
func (s *Server) Swap(rt Runtime) { s.rt.Store(newRuntime(rt)) }

func (s *Server) runtime() *runtime { return s.rt.Load() }

// Draining reports whether Shutdown has begun.
func (s *Server) Draining() bool { return s.draining.Load() }

// Conns returns the number of open client connections.
func (s *Server) Conns() int64 { return s.conns.Load() }

// Serve accepts connections on l until Shutdown or an accept error.
func (s *Server) Serve(l net.Listener, opts Listener) error {
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		return errors.New("server: shut down")
	}
	s.lns[l] = struct{}{}
	s.mu.Unlock()
	if opts.TLS != nil && opts.Fingerprint != nil {
		opts.TLS = fingerprinting(opts.TLS, opts.Fingerprint)
	}
	var backoff time.Duration
	for {
		conn, err := l.Accept()
		if err != nil {
			if s.draining.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooMany) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("server: accept on %s: %w", l.Addr(), err)
		}
		backoff = 0
		if max := s.runtime().limits.MaxConns; max > 0 && s.conns.Load() >= int64(max) {
			s.RefusedConns.Add(1)
			conn.Close()
			continue
		}
		go s.serveConn(conn, s.track(conn), opts)
	}
}

var errTooMany = errors.New("too many open files")

// admit counts a new connection against its client's and reports whether
// MaxConnsPerIP allows it. Every connection is counted, even with no limit
// set, so a reload that sets one sees the connections already open.
func (s *Server) admit(client netip.AddrPort) (limit.Ticket, bool) {
	var buf [16]byte
	key := limit.ClientKey(buf[:0], client.Addr())
	t, _ := s.perIP.Acquire(key)
	if max := s.runtime().limits.MaxConnsPerIP; max > 0 && s.perIP.Count(key) > max {
		t.Release()
		return limit.Ticket{}, false
	}
	return t, true
}

// AdmitConn counts a connection that does not come through Serve (an
// HTTP/3 connection) against Limits.MaxConns and MaxConnsPerIP, and
// reports whether they allow it; release ends its count.
func (s *Server) AdmitConn(client netip.AddrPort) (release func(), ok bool) {
	if max := s.runtime().limits.MaxConns; max > 0 && s.conns.Load() >= int64(max) {
		s.RefusedConns.Add(1)
		return nil, false
	}
	t, ok := s.admit(client)
	if !ok {
		s.RefusedConns.Add(1)
		return nil, false
	}
	s.conns.Add(1)
	return func() { s.conns.Add(-1); t.Release() }, true
}

// connState is what Shutdown needs to know of a connection.
type connState struct {
	idle atomic.Bool // waiting for the next request
}

func (s *Server) track(c net.Conn) *connState {
	st := &connState{}
	s.mu.Lock()
	s.active[c] = st
	s.conns.Add(1)
	s.wg.Add(1)
	s.mu.Unlock()
	return st
}

func (s *Server) untrack(c net.Conn) {
	s.mu.Lock()
	delete(s.active, c)
	s.conns.Add(-1)
	s.wg.Done()
	s.mu.Unlock()
}

func (s *Server) serveConn(conn net.Conn, st *connState, opts Listener) {
	defer func() {
		if p := recover(); p != nil {
			s.Log.Error("panic serving connection", "client", conn.RemoteAddr().String(), "panic", p, "stack", string(debug.Stack()))
		}
		conn.Close()
		s.untrack(conn)
	}()
	if tcp, ok := conn.(*net.TCPConn); ok {
		_ = tcp.SetNoDelay(true)
	}
	// The client address is read here, not in the accept loop: behind
	// PROXY protocol it waits for the header.
	ticket, ok := s.admit(addrPort(conn.RemoteAddr()))
	if !ok {
		s.RefusedConns.Add(1)
		return
	}
	defer ticket.Release()
	var tlsState *tls.ConnectionState
	var ja4 string
	if opts.TLS != nil {
		hc := &helloConn{Conn: conn}
		tc := tls.Server(hc, opts.TLS)
		_ = tc.SetDeadline(time.Now().Add(s.runtime().timeouts.Header))
		if err := tc.HandshakeContext(s.ctx); err != nil {
			return
		}
		_ = tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		ja4 = hc.print
		tlsState, conn = &st, tc
		switch st.NegotiatedProtocol {
		case "h2":
			s.serveH2(conn, tlsState, ja4, opts.AltSvc)
			return
		case "acme-tls/1":
			return // an ACME TLS-ALPN-01 check: the handshake was all (RFC 8737 section 3)
		}
	}
	br := readerPool.Get().(*bufio.Reader)
	br.Reset(conn)
	defer func() { br.Reset(nil); readerPool.Put(br) }()
	// Until its first bytes arrive the connection is idle: Shutdown may
	// close it.
	st.idle.Store(true)
	if s.draining.Load() {
		return
	}
	h2c := false
	if opts.H2C && opts.TLS == nil {
		var err error
		if h2c, err = s.isH2Preface(conn, br); err != nil {
			return // nothing, or part of a preface, within the header timeout
		}
	}
	st.idle.Store(false)
	if h2c {
		s.serveH2(&bufferedConn{Conn: conn, br: br}, nil, "", "")
		return
	}
	s.serveH1(s.reqCtx, conn, st, br, tlsState, ja4, opts)
}

func (s *Server) serveH2(conn net.Conn, tlsState *tls.ConnectionState, ja4, altSvc string) {
	if s.H2 == nil {
		return
	}
	s.H2.ServeConn(s.drain, conn, addrPort(conn.RemoteAddr()), tlsState, ja4, altSvc, s.ServeStream)
}

// ServeStream serves one HTTP/2 or HTTP/3 request: the checks HTTP/1.1's
// codec makes, then the engine of the current runtime. pc is the stream's
// reusable engine state (nil on its first request; ServeStream fills it).
func (s *Server) ServeStream(ctx context.Context, sess proxy.Session, pc **proxy.Ctx) error {
	rt := s.runtime()
	if err := checkH2(sess, rt); err != nil {
		return rt.engine.Reject(ctx, sess, err)
	}
	sess = s.withBodyRate(sess, rt)
	if d := rt.timeouts.Request; d > 0 {
		// As over HTTP/1.1: a context of its own, and an engine state
		// of its own since contexts derived from it may outlive the
		// request.
		rctx, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return rt.engine.Serve(rctx, sess, rt.engine.NewCtx())
	}
	if *pc == nil {
		*pc = rt.engine.NewCtx()
	}
	return rt.engine.Serve(ctx, sess, *pc)
}

// helloConn is the connection under a TLS server connection. It carries
// the fingerprint of its ClientHello from the handshake to the sessions:
// the fingerprint lives and dies with its connection, so a handshake that
// fails, however it fails, leaves nothing behind (a table keyed by
// connection would keep an entry for each).
type helloConn struct {
	net.Conn
	print string // set by the ClientHello hook during the handshake
}

// NetConn returns the connection beneath (for the reset of a slow client).
func (h *helloConn) NetConn() net.Conn { return h.Conn }

// fingerprinting returns cfg with a ClientHello hook that records each
// connection's fingerprint in its helloConn.
func fingerprinting(cfg *tls.Config, print func(*tls.ClientHelloInfo) string) *tls.Config {
	cfg = cfg.Clone()
	next := cfg.GetConfigForClient
	cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		if hc, ok := h.Conn.(*helloConn); ok {
			hc.print = print(h)
		}
		if next != nil {
			return next(h)
		}
		return nil, nil
	}
	return cfg
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// isH2Preface reports whether the connection starts with the HTTP/2 client
// preface. It compares only what has arrived, byte by byte, so a short
// HTTP/1.0 request is recognised without waiting for more bytes. The
// preface, like a request head, must arrive within the header timeout.
func (s *Server) isH2Preface(conn net.Conn, br *bufio.Reader) (bool, error) {
	_ = conn.SetReadDeadline(time.Now().Add(s.runtime().timeouts.Header))
	defer conn.SetReadDeadline(time.Time{})
	for n := 1; n <= len(h2Preface); n++ {
		b, err := br.Peek(n)
		if err != nil {
			return false, err
		}
		if b[n-1] != h2Preface[n-1] {
			return false, nil
		}
	}
	return true, nil
}

// bufferedConn replays what a bufio.Reader already read from the connection.
type bufferedConn struct {
	net.Conn
	br *bufio.Reader
}

// NetConn is the connection underneath (its CloseWrite: see h2's
// lingering close).
func (b *bufferedConn) NetConn() net.Conn { return b.Conn }

func (b *bufferedConn) Read(p []byte) (int, error) {
	if b.br.Buffered() > 0 {
		return b.br.Read(p)
	}
	return b.Conn.Read(p)
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case interface{ AddrPort() netip.AddrPort }:
		return a.AddrPort()
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return ap
}

func (s *Server) rejected(client netip.AddrPort, status int, reason string) {
	s.Rejected.Add(1)
	s.Log.Info("request rejected", "client", client.String(), "status", status, "reason", reason)
}

// Shutdown stops accepting, lets in-flight requests finish (each connection
// closes after its current response) and returns when every connection has
// closed or ctx ends, when the remaining connections are closed.
func (s *Server) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.stop()
	s.mu.Lock()
	for l := range s.lns {
		l.Close()
	}
	// Idle keep-alive connections wait in Peek: a deadline in the past
	// wakes them. A connection that turns idle after this sees draining.
	for c, st := range s.active {
		if st.idle.Load() {
			_ = c.SetReadDeadline(time.Now())
		}
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		s.cancel()
		return nil
	case <-ctx.Done():
		s.cancel()
		s.mu.Lock()
		for c := range s.active {
			c.Close()
		}
		s.mu.Unlock()
		return ctx.Err()
	}
}

// checkH2 holds an HTTP/2 request to what the HTTP/1.1 codec enforces
// (see CheckStream).
func checkH2(sess proxy.Session, rt *runtime) error {
	return CheckStream(sess, rt.paths, rt.limits)
}

// CheckStream holds a request that arrived on an HTTP/2 stream to what
// the HTTP/1.1 codec enforces: the same canonical request
// (httphead.Request.Validate, under the same path policy) and the same
// limits on fields and body. The Fiddle runs its HTTP/2 requests through
// it too.
func CheckStream(sess proxy.Session, paths httphead.PathPolicy, lim Limits) error {
	if t, ok := sess.(interface{ HeadersTooLarge() bool }); ok && t.HeadersTooLarge() {
		return &httphead.Invalid{Status: 431, Reason: "request header fields too large"}
	}
	req := sess.Request()
	if req.Paths != paths {
		req.Paths = paths
		req.SetLine(req.Method, req.Target, req.Host, req.Scheme)
	}
	if err := req.Validate(); err != nil {
		return err
	}
	if req.Header.Len() > cmp.Or(lim.MaxHeaders, 100) {
		return &httphead.Invalid{Status: 431, Reason: "too many header fields"}
	}
	max := lim.MaxBodyBytes
	if max > 0 && req.ContentLength > max {
		return &httphead.Invalid{Status: 413, Reason: "request body too large"}
	}
	if l, ok := sess.(interface{ LimitBody(int64) }); ok && max > 0 {
		l.LimitBody(max)
	}
	return nil
}
