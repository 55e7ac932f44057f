package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/internal/httpdate"
	"github.com/outpost-edge/outpost/proxy"
)

// h1Conn serves HTTP/1.1 on one connection. It is the proxy.Session of each
// request in turn; everything it holds is reused from request to request,
// so a keep-alive connection allocates nothing per request in steady state.
type h1Conn struct {
	srv    *Server
	conn   net.Conn
	br     *bufio.Reader
	bw     *bufio.Writer
	client netip.AddrPort
	tls    *tls.ConnectionState
	ja4    string // the client's TLS fingerprint, "" for cleartext
	h2c    bool   // the listener also takes cleartext HTTP/2
	altSvc []byte // the Alt-Svc field line, nil for none
	scheme []byte
	ctx    *proxy.Ctx

	req  httphead.Request
	body h1.BodyReader
	in   bodyIn // what Session.Body returns
	cw   h1.ChunkedWriter

	// per response
	chunked  bool
	noBody   bool
	close    bool // close the connection after this response
	upgraded bool
	head     []byte
	headHeld bool        // the head is buffered in bw, not yet written
	vec      [2][]byte   // head and body for one writev (writeHeadAnd)
	bufs     net.Buffers // over vec: a field, so that WriteTo does not allocate
	served   int         // requests read on this connection
	armed    time.Time   // when the write deadline was last set
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 16<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 32<<10) }}
)

func (s *Server) serveH1(ctx context.Context, conn net.Conn, st *connState, br *bufio.Reader, tlsState *tls.ConnectionState, ja4 string, opts Listener) {
	c := &h1Conn{srv: s, conn: conn, br: br, tls: tlsState, scheme: schemeHTTP, ja4: ja4, h2c: opts.H2C && opts.TLS == nil}
	if tlsState != nil {
		c.scheme = schemeHTTPS
		if opts.AltSvc != "" {
			c.altSvc = []byte("Alt-Svc: " + opts.AltSvc + "\r\n")
		}
	}
	c.client = addrPort(conn.RemoteAddr())
	c.bw = writerPool.Get().(*bufio.Writer)
	c.bw.Reset(conn)
	c.in.c = c
	defer func() {
		if !c.upgraded {
			c.bw.Reset(nil)
			writerPool.Put(c.bw)
		}
	}()
	for s.serveOne(ctx, c, st) {
	}
}

var (
	schemeHTTP  = []byte("http")
	schemeHTTPS = []byte("https")
)

// serveOne reads and answers one request; it reports whether the connection
// may carry another.
func (s *Server) serveOne(ctx context.Context, c *h1Conn, st *connState) bool {
	rt := s.runtime()
	if c.ctx == nil {
		c.ctx = rt.engine.NewCtx()
	}
	lim := rt.limits
	// Idle: wait for the first byte of the next request. A new connection
	// gets only the header timeout: opening connections and sending
	// nothing must not hold them for the keep-alive time.
	wait := rt.timeouts.Idle
	if c.served == 0 {
		wait = rt.timeouts.Header
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(wait))
	st.idle.Store(true)
	if s.draining.Load() && c.br.Buffered() == 0 {
		return false
	}
	_, err := c.br.Peek(1)
	st.idle.Store(false)
	if err != nil {
		return false
	}
	// A reload may have come while the connection waited: the request
	// is served with the runtime current when it arrives.
	rt = s.runtime()
	lim = rt.limits
	// The head must be whole within the header timeout of its first
	// byte: the deadline is set once, so a head trickled byte by byte
	// (slowloris) is cut at that time in total.
	_ = c.conn.SetReadDeadline(time.Now().Add(rt.timeouts.Header))
	c.req.Reset()
	c.req.Paths = rt.paths
	c.served++
	if err := h1.ReadRequest(c.br, &c.req, c.scheme, h1.Limits{MaxHeaderBytes: lim.MaxHeaderBytes, MaxHeaders: lim.MaxHeaders}); err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			s.SlowClients.Add(1)
			err = errHeadTimeout
		}
		c.reject(err)
		return false
	}
	// The header deadline stays armed: nothing reads the connection until
	// the body (whose reads set their own) or the next request (which
	// sets the idle one), and leaving it saves a timer update.
	c.chunked, c.noBody, c.close, c.upgraded = false, false, c.req.Close || s.draining.Load(), false
	c.body.Reset(c.br, c.req.ContentLength, c.req.Chunked)
	c.in.reset(rt)
	if max := lim.MaxBodyBytes; max > 0 && c.req.ContentLength > max {
		c.reject(&h1.Error{Status: 413, Reason: "request body too large"})
		return false
	}
	if d := rt.timeouts.Request; d > 0 {
		// A per-request context: contexts derived from it may outlive
		// the request, so the request gets a Ctx of its own too.
		rctx, cancel := context.WithTimeout(ctx, d)
		err = rt.engine.Serve(rctx, c, rt.engine.NewCtx())
		cancel()
	} else {
		err = rt.engine.Serve(ctx, c, c.ctx)
	}
	if err != nil || c.close || c.upgraded {
		return false
	}
	return c.in.drain()
}

var errHeadTimeout = &h1.Error{Status: 408, Reason: "request head not received in time"}

// reject answers a request the codec refused, and the connection closes:
// after a malformed head, nothing on it can be trusted.
func (c *h1Conn) reject(err error) {
	var he *h1.Error
	if !errors.As(err, &he) {
		return // EOF or reset: nobody to answer
	}
	if he != errHeadTimeout {
		c.srv.rejected(c.client, he.Status, he.Reason)
	}
	if he == h1.ErrNotHTTP && c.h2c && c.served == 1 {
		// Not HTTP/1.x, on a listener that takes HTTP/2: a broken
		// connection preface, which ends the connection unanswered
		// (RFC 9113 section 3.4).
		return
	}
	body := he.Reason + "\n"
	c.head = append(c.head[:0], "HTTP/1.1 "...)
	c.head = strconv.AppendInt(c.head, int64(he.Status), 10)
	c.head = append(c.head, ' ')
	c.head = append(c.head, he.Reason...)
	c.head = append(c.head, "\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	c.head = strconv.AppendInt(c.head, int64(len(body)), 10)
	c.head = append(c.head, "\r\n\r\n"...)
	c.head = append(c.head, body...)
	_ = c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.conn.Write(c.head)
	// Let the client read the answer before the close resets it.
	if tc, ok := c.conn.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
		_ = c.conn.SetReadDeadline(time.Now().Add(time.Second))
		_, _ = io.Copy(io.Discard, io.LimitReader(c.conn, 64<<10))
	}
}

// proxy.Session

func (c *h1Conn) Request() *httphead.Request { return &c.req }
func (c *h1Conn) Body() io.Reader            { return &c.in }
func (c *h1Conn) ClientAddr() netip.AddrPort { return c.client }
func (c *h1Conn) TLS() *tls.ConnectionState  { return c.tls }
func (c *h1Conn) JA4() string                { return c.ja4 }
func (c *h1Conn) Upgrade() (io.ReadWriteCloser, error) {
	if err := c.bw.Flush(); err != nil {
		return nil, err
	}
	c.upgraded = true
	_ = c.conn.SetDeadline(time.Time{})
	return &upgradedConn{Conn: c.conn, br: c.br}, nil
}

func (c *h1Conn) WriteHead(resp *httphead.Response) error {
	h := &resp.Header
	h.Del("Content-Length")
	h.Del("Transfer-Encoding")
	c.noBody = !httphead.BodyAllowed(c.req.Method, resp.Status)
	c.head = h1.AppendResponseHead(c.head[:0], resp.Status, resp.Reason, h)
	c.head = c.head[:len(c.head)-2] // reopen the head to add framing
	switch {
	case resp.Status == 101:
	case c.noBody:
		if resp.ContentLength >= 0 && string(c.req.Method) == "HEAD" {
			c.head = appendContentLength(c.head, resp.ContentLength)
		}
	case len(resp.TransferCodings) > 0:
		// A body still coded as the origin sent it: say so, chunked on
		// top (the engine sends such a body to HTTP/1.1 clients only).
		c.chunked = true
		c.head = append(append(append(c.head, "Transfer-Encoding: "...), resp.TransferCodings...), ", chunked\r\n"...)
		c.cw.Reset(c.bw)
	case resp.ContentLength >= 0:
		c.head = appendContentLength(c.head, resp.ContentLength)
	case c.req.ProtoMinor >= 1:
		c.chunked = true
		c.head = append(c.head, "Transfer-Encoding: chunked\r\n"...)
		c.cw.Reset(c.bw)
	default:
		c.close = true // HTTP/1.0: the body ends when the connection closes
	}
	if !h.Has("Date") {
		c.head = append(append(append(c.head, "Date: "...), httpdate.Now()...), "\r\n"...)
	}
	if c.altSvc != nil && !h.Has("Alt-Svc") {
		c.head = append(c.head, c.altSvc...)
	}
	switch {
	case resp.Status == 101:
	case c.close:
		c.head = append(c.head, "Connection: close\r\n"...)
	case c.req.ProtoMinor == 0:
		c.head = append(c.head, "Connection: keep-alive\r\n"...)
	}
	c.head = append(c.head, "\r\n"...)
	c.armWrite()
	_, err := c.bw.Write(c.head)
	c.headHeld = err == nil
	return err
}

// WriteInterim sends an interim response (103 Early Hints) at once; the
// engine never sends one to an HTTP/1.0 client.
func (c *h1Conn) WriteInterim(resp *httphead.Response) error {
	c.head = h1.AppendResponseHead(c.head[:0], resp.Status, resp.Reason, &resp.Header)
	c.armWrite()
	if _, err := c.bw.Write(c.head); err != nil {
		return err
	}
	return c.bw.Flush()
}

func appendContentLength(b []byte, n int64) []byte {
	b = append(b, "Content-Length: "...)
	b = strconv.AppendInt(b, n, 10)
	return append(b, "\r\n"...)
}

// armWrite sets the deadline for the next writes: a client that stops
// reading cannot hold the response forever. It moves the deadline only
// once a quarter of the write timeout has passed since it last did, so
// every write has at least three quarters of it without a timer update
// per write.
func (c *h1Conn) armWrite() {
	now := time.Now()
	d := c.srv.runtime().timeouts.Write
	if now.Sub(c.armed) < d/4 {
		return
	}
	c.armed = now
	_ = c.conn.SetWriteDeadline(now.Add(d))
}

// Write sends body bytes and flushes them: a streamed response (server-sent
// events, a gRPC-web stream) reaches the client as the origin sends it, and a
// small whole response leaves in one write together with its head.
func (c *h1Conn) Write(p []byte) (int, error) {
	if c.noBody {
		return len(p), nil
	}
	c.armWrite()
	var n int
	var err error
	switch {
	case c.chunked:
		n, err = c.cw.Write(p)
	case c.headHeld && len(p) > c.bw.Available():
		n, err = c.writeHeadAnd(p)
	default:
		n, err = c.bw.Write(p)
	}
	c.headHeld = false
	if err == nil {
		err = c.bw.Flush()
	}
	return n, c.noteSlow(err)
}

// noteSlow counts a client too slow to take a write within the write
// timeout, and makes closing its connection a reset. It returns err.
func (c *h1Conn) noteSlow(err error) error {
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.srv.SlowClients.Add(1)
		resetOnClose(c.conn)
	}
	return err
}

// FlushHead sends the head Write would have sent with the first body
// bytes (proxy.HeadFlusher).
func (c *h1Conn) FlushHead() error {
	if !c.headHeld {
		return nil
	}
	c.headHeld = false
	c.armWrite()
	return c.noteSlow(c.bw.Flush())
}

// writeHeadAnd sends the buffered head and body bytes p in one writev:
// a large body (a 1 MiB hit) neither waits for part of it to be copied
// into the buffer nor costs a second system call. It reports the body
// bytes written.
func (c *h1Conn) writeHeadAnd(p []byte) (int, error) {
	tc, ok := c.conn.(*net.TCPConn)
	if !ok { // TLS and wrapped connections: the buffer frames the records
		return c.bw.Write(p)
	}
	c.bw.Reset(tc) // drops the buffered copy of c.head, sent below
	c.vec = [2][]byte{c.head, p}
	c.bufs = c.vec[:]
	n, err := c.bufs.WriteTo(tc)
	c.vec, c.bufs = [2][]byte{}, nil
	return int(max(0, n-int64(len(c.head)))), err
}

func (c *h1Conn) Finish(trailers *httphead.Header) error {
	if c.chunked && !c.noBody {
		if err := c.cw.Close(trailers); err != nil {
			return err
		}
	}
	return c.bw.Flush()
}

// resetOnClose makes closing conn drop what is still queued for the client
// and send a reset: a client that stopped reading would otherwise keep
// megabytes of kernel memory in the socket's send queue after the close.
func resetOnClose(conn net.Conn) {
	for {
		switch c := conn.(type) {
		case *net.TCPConn:
			_ = c.SetLinger(0)
			return
		case interface{ NetConn() net.Conn }:
			conn = c.NetConn()
		default:
			return
		}
	}
}

// bodyIn is the request body as the engine reads it: it sends 100 Continue
// before the first read when the client asked for it, enforces the body
// size limit, and reads under the body rate's deadlines.
type bodyIn struct {
	c         *h1Conn
	rate      bodyRate
	max       int64
	continued bool
}

func (b *bodyIn) reset(rt *runtime) {
	b.rate.reset(rt)
	b.max, b.continued = rt.limits.MaxBodyBytes, false
}

var continueLine = []byte("HTTP/1.1 100 Continue\r\n\r\n")

func (b *bodyIn) Read(p []byte) (int, error) {
	c := b.c
	if c.req.Expect100 && !b.continued {
		b.continued = true
		c.armWrite()
		if _, err := c.bw.Write(continueLine); err != nil {
			return 0, err
		}
		if err := c.bw.Flush(); err != nil {
			return 0, err
		}
	}
	n, err := b.rate.read(c.srv, c.conn, &c.body, p)
	var he *h1.Error
	switch {
	case errors.As(err, &he):
		err = proxy.Errorf(he.Status, proxy.FromDownstream, he.Reason, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.close = true
	}
	if b.max > 0 && b.rate.n > b.max {
		return n, proxy.Errorf(413, proxy.FromDownstream, "request body too large", nil)
	}
	return n, err
}

// Trailers returns the trailer section of a chunked request body once the
// body has been read to its end (proxy.Trailered).
func (b *bodyIn) Trailers() *httphead.Header { return b.c.body.Trailers() }

// drain reads what is left of the request body so the next request can be
// parsed; a large remainder is not worth reading, and the connection closes.
func (b *bodyIn) drain() bool {
	if b.c.req.ContentLength == 0 && !b.c.req.Chunked {
		return true
	}
	if b.c.req.Expect100 && !b.continued {
		return false // the client is still waiting to send it
	}
	_ = b.c.conn.SetReadDeadline(time.Now().Add(b.rate.timeout))
	n, err := io.Copy(io.Discard, io.LimitReader(&b.c.body, 256<<10))
	return err == nil && n < 256<<10
}

// upgradedConn is a connection after a protocol switch; bytes the client
// sent right behind its request are still in the reader.
type upgradedConn struct {
	net.Conn
	br *bufio.Reader
}

func (u *upgradedConn) Read(p []byte) (int, error) {
	if u.br.Buffered() > 0 {
		return u.br.Read(p)
	}
	return u.Conn.Read(p)
}
