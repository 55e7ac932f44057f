package client

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/pool"
)

// conn is one pooled origin connection with its buffers and scratch, so a
// request on a reused connection allocates almost nothing. It is owned by
// one exchange at a time: the pool hands it out, the exchange returns it.
type conn struct {
	t    *Transport
	key  pool.Key
	addr string
	nc   net.Conn // TCP or TLS
	raw  syscall.RawConn
	br   *bufio.Reader
	bw   *bufio.Writer

	uses int // exchanges started on this connection

	// Per-exchange state, reset by roundTrip.
	readTimeout, writeTimeout time.Duration
	written, read             int64 // bytes moved this exchange
	aborted                   atomic.Bool
	reusable                  bool
	broken                    bool    // the request was not fully sent: never reuse
	interim                   Interim // the context's, when it takes interim responses

	head     []byte
	target   []byte
	src      countingReader
	lr       io.LimitedReader
	cw       h1.ChunkedWriter
	copyBuf  []byte // made on the first chunked upload
	body     h1.BodyReader
	abortFn  func() // c.abort as a value made once, for context.AfterFunc
	quick    bool   // set TCP_QUICKACK after the next request (quickAck)
	peekFn   func(fd uintptr) bool
	peekErr  error
	peekN    int
	peekByte [1]byte
}

// peekAfter is how long a connection sits idle before getConn peeks at
// it. One put back a moment ago is almost never one the origin closed,
// and when it is, RoundTrip retries a request that may be sent twice on a
// new connection: only longer-idle connections, and requests that cannot
// be retried, pay for the peek (a system call per request otherwise).
const peekAfter = time.Second

// getConn takes a live idle connection or dials one. retryable says
// whether the request may be retried after a stale connection fails it.
func (t *Transport) getConn(ctx context.Context, key pool.Key, addr string, retryable bool) (*conn, bool, error) {
	p := t.pool
	dial := func(ctx context.Context) (pool.Conn, error) { return t.dial(ctx, key, addr) }
	for range 4 {
		pc, idle, err := p.Get(ctx, key, dial)
		if err != nil {
			return nil, false, connectError(ctx, addr, err)
		}
		c := pc.(*conn)
		if idle == pool.Fresh || retryable && idle < peekAfter || c.alive() {
			return c, idle != pool.Fresh, nil
		}
		p.Discard(key, c)
	}
	c, err := t.newConn(ctx, key, addr)
	return c, false, err
}

// newConn always dials, for a retry.
func (t *Transport) newConn(ctx context.Context, key pool.Key, addr string) (*conn, error) {
	pc, err := t.pool.GetNew(ctx, key, func(ctx context.Context) (pool.Conn, error) { return t.dial(ctx, key, addr) })
	if err != nil {
		return nil, connectError(ctx, addr, err)
	}
	return pc.(*conn), nil
}

// connectError wraps a failure to obtain a connection.
func connectError(ctx context.Context, addr string, err error) error {
	var ne net.Error
	if ctx.Err() == nil && (errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()) {
		err = ErrConnectTimeout
	}
	return &Error{Op: OpConnect, Addr: addr, BeforeWrite: true, BeforeResponse: true, Err: err}
}

// dial opens a connection, with TLS when configured, within ConnectTimeout.
func (t *Transport) dial(ctx context.Context, key pool.Key, addr string) (*conn, error) {
	ctx, cancel := context.WithTimeout(ctx, orDefault(t.ConnectTimeout, 10*time.Second))
	defer cancel()
	dial := t.Dial
	if dial == nil {
		dial = t.dialer.DialContext
	}
	nc, err := dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &conn{t: t, key: key, addr: addr, nc: nc, quick: true}
	if sc, ok := nc.(syscall.Conn); ok {
		c.raw, _ = sc.SyscallConn()
	}
	if key.TLS {
		cfg := t.TLS.Clone()
		cfg.ServerName = key.SNI
		tc := tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, err
		}
		c.nc = tc
	}
	c.br = bufio.NewReaderSize(c, 8<<10)
	c.bw = bufio.NewWriterSize(c, 8<<10)
	c.abortFn = c.abort
	c.peekFn = c.peek
	return c, nil
}

// Close closes the network connection; the pool calls it.
func (c *conn) Close() error { return c.nc.Close() }

// Read and Write move bytes with a fresh deadline each time (the timeouts
// bound silence, not whole transfers), counting what they move.
func (c *conn) Read(p []byte) (int, error) {
	if err := c.deadline(c.nc.SetReadDeadline, c.readTimeout); err != nil {
		return 0, err
	}
	n, err := c.nc.Read(p)
	c.read += int64(n)
	return n, err
}

func (c *conn) Write(p []byte) (int, error) {
	if err := c.deadline(c.nc.SetWriteDeadline, c.writeTimeout); err != nil {
		return 0, err
	}
	n, err := c.nc.Write(p)
	c.written += int64(n)
	return n, err
}

var errAborted = errors.New("client: exchange aborted")

// deadline sets a deadline d from now, unless the exchange was aborted.
// The abort flag is checked after setting, so an abort racing with this
// call always leaves the deadline in the past.
func (c *conn) deadline(set func(time.Time) error, d time.Duration) error {
	if d > 0 {
		set(time.Now().Add(d))
	}
	if c.aborted.Load() {
		return errAborted
	}
	return nil
}

// abort interrupts blocked I/O when the exchange's context is done.
func (c *conn) abort() {
	c.aborted.Store(true)
	c.nc.SetDeadline(time.Unix(1, 0))
}

// alive reports whether an idle connection can be reused: the origin has
// neither closed it nor sent anything unasked. It peeks at the socket
// without blocking, as Pingora's idle watch does, so that a connection the
// origin timed out is not written to.
func (c *conn) alive() bool {
	if c.br.Buffered() > 0 {
		return false
	}
	if c.raw == nil {
		return true
	}
	c.peekN, c.peekErr = 0, nil
	if err := c.raw.Read(c.peekFn); err != nil {
		return false
	}
	return c.peekErr == syscall.EAGAIN
}

func (c *conn) peek(fd uintptr) bool {
	c.peekN, c.peekErr = peekSocket(fd, c.peekByte[:])
	return true // never wait for readability
}

// countingReader counts the reads of the caller's body, so a retry knows
// whether the body was started.
type countingReader struct {
	r     io.Reader
	reads int
	err   error // the body's own error, told apart from the origin's
}

func (r *countingReader) Read(p []byte) (int, error) {
	r.reads++
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}
