package client

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
)

// maxInterim bounds the 1xx responses skipped before the final one.
const maxInterim = 8

var (
	contentLength    = []byte("Content-Length")
	transferEncoding = []byte("Transfer-Encoding")
	chunked          = []byte("chunked")
	hostField        = []byte("Host")
)

// frameRequest replaces the framing fields of req.Header and returns the
// body length to send: 0 for none, -1 for chunked.
func frameRequest(req *httphead.Request, body io.Reader) int64 {
	h := &req.Header
	h.DelFunc(func(name, value []byte) bool {
		return httphead.EqualFold(name, "Content-Length") || httphead.EqualFold(name, "Transfer-Encoding") ||
			httphead.EqualFold(name, "Expect") && httphead.EqualFold(value, "100-continue")
	})
	if !h.Has("Host") {
		h.Add(hostField, req.Host)
	}
	length := req.ContentLength
	switch {
	case body == nil:
		length = 0
	case length > 0 && h.Has("Trailer"):
		// The request declares trailers (an HTTP/2 or HTTP/3 client may
		// send them after a body of known length): chunked is the only
		// HTTP/1.1 framing that carries them (RFC 9112 section 7.1.2).
		length = -1
	}
	switch {
	case length < 0:
		h.Add(transferEncoding, chunked)
	case length > 0 || expectsBody(req.Method):
		var num [20]byte
		h.Add(contentLength, strconv.AppendInt(num[:0], length, 10))
	}
	return length
}

// expectsBody reports whether a method's requests carry a body, so an empty
// one is sent as Content-Length: 0 (RFC 9110 section 8.6).
func expectsBody(method []byte) bool {
	switch string(method) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

// roundTrip runs one exchange on c, which it returns to the pool or closes
// unless it hands it to the caller through the body. ctx is watched until
// the body ends, so a body read blocked on the origin ends with it.
func (c *conn) roundTrip(ctx context.Context, req *httphead.Request, body io.Reader, length int64, resp *httphead.Response) (io.ReadCloser, error) {
	c.reset(body)
	c.interim, _ = ctx.(Interim)
	stop := c.watch(ctx)
	op, err := c.exchange(req, body, length, resp)
	if err == nil && c.aborted.Load() {
		op, err = OpReadHead, ctx.Err()
	}
	if err != nil {
		stop()
		return nil, c.fail(ctx, op, err)
	}
	return c.responseBody(ctx, req, resp, stop), nil
}

// exchange writes the request and reads the response head.
func (c *conn) exchange(req *httphead.Request, body io.Reader, length int64, resp *httphead.Response) (Op, error) {
	if err := c.writeRequest(req, body, length); err != nil {
		if !c.answeredEarly(req.Method, resp, err) {
			return OpWrite, err
		}
		return "", nil
	}
	if err := c.readHead(req.Method, resp); err != nil {
		return OpReadHead, err
	}
	return "", nil
}

// answeredEarly reports whether the origin sent a final response before
// refusing the rest of the request body, as it may (a 413, a 401): that
// response is the answer, and the connection is closed after it.
func (c *conn) answeredEarly(method []byte, resp *httphead.Response, writeErr error) bool {
	if c.src.err != nil || writeErr == ErrShortBody || c.aborted.Load() {
		return false
	}
	c.readTimeout = orDefault(c.t.FirstByteTimeout, 60*time.Second)
	if c.readHead(method, resp) != nil || resp.Status == 101 {
		return false
	}
	c.broken = true
	return true
}

// watch aborts c's I/O when ctx is done, until the returned stop is
// called; stop reports false when the abort has already happened.
func (c *conn) watch(ctx context.Context) (stop func() bool) {
	if ctx.Done() == nil {
		return neverAborted
	}
	return context.AfterFunc(ctx, c.abortFn)
}

func neverAborted() bool { return true }

// reset clears the per-exchange state.
func (c *conn) reset(body io.Reader) {
	c.uses++
	c.written, c.read = 0, 0
	c.broken = false
	c.aborted.Store(false)
	c.src = countingReader{r: body}
	c.writeTimeout = orDefault(c.t.IdleTimeout, 60*time.Second)
}

// fail closes c and describes err. Errors are mapped to the timeouts and
// the context error that caused them.
func (c *conn) fail(ctx context.Context, op Op, err error) error {
	e := &Error{Op: op, Addr: c.addr, Reused: c.uses > 1, BeforeWrite: c.written == 0, BeforeResponse: c.read == 0, Err: err}
	var ne net.Error
	switch {
	case c.src.err != nil:
		e.Op, e.Err = OpRequestBody, c.src.err
	case ctx.Err() != nil:
		e.Err = ctx.Err()
	case errors.As(err, &ne) && ne.Timeout() || errors.Is(err, os.ErrDeadlineExceeded):
		if op == OpReadHead {
			e.Err = ErrFirstByteTimeout
		} else {
			e.Err = ErrIdleTimeout
		}
	}
	c.t.pool.Discard(c.key, c)
	return e
}

// writeRequest writes the head and streams the body.
func (c *conn) writeRequest(req *httphead.Request, body io.Reader, length int64) error {
	c.head = h1.AppendRequestHead(c.head[:0], req.Method, c.originForm(req), &req.Header)
	if _, err := c.bw.Write(c.head); err != nil {
		return err
	}
	switch {
	case length > 0:
		c.lr = io.LimitedReader{R: &c.src, N: length}
		if _, err := c.bw.ReadFrom(&c.lr); err != nil {
			return err
		}
		if c.lr.N > 0 {
			return ErrShortBody
		}
	case length < 0:
		if c.copyBuf == nil {
			c.copyBuf = make([]byte, 16<<10)
		}
		c.cw.Reset(c.bw)
		if _, err := io.CopyBuffer(&c.cw, &c.src, c.copyBuf); err != nil {
			return err
		}
		var trailers *httphead.Header
		if t, ok := body.(interface{ Trailers() *httphead.Header }); ok {
			trailers = t.Trailers() // the body has ended: the section is whole
		}
		if err := c.cw.Close(trailers); err != nil {
			return err
		}
	}
	c.readTimeout = orDefault(c.t.FirstByteTimeout, 60*time.Second)
	if err := c.bw.Flush(); err != nil {
		return err
	}
	if c.quick {
		c.quickAck()
	}
	return nil
}

// originForm returns the target to send: the canonical path and query, or
// the target as the client sent it when the request's path policy says so
// (httphead.Request.ForwardTarget); always in origin-form.
func (c *conn) originForm(req *httphead.Request) []byte {
	c.target = req.ForwardTarget(c.target[:0])
	return c.target
}

// readHead reads the final response head. Interim 1xx responses other
// than 101 go to the exchange's Interim, when its context has one, and are
// skipped otherwise; resp is reset for each, so the final response keeps
// none of their fields.
func (c *conn) readHead(method []byte, resp *httphead.Response) error {
	for range maxInterim {
		if err := h1.ReadResponse(c.br, resp, method, c.t.Limits); err != nil {
			return err
		}
		if resp.Status >= 200 || resp.Status == 101 {
			return nil
		}
		if c.interim != nil {
			c.interim.Interim(resp)
		}
	}
	return &h1.Error{Status: 502, Reason: "too many interim responses"}
}

// responseBody hands the body to the caller, or the whole connection for a
// 101. An empty body returns the connection to the pool at once. stop ends
// the watch on ctx; the body calls it when it ends.
func (c *conn) responseBody(ctx context.Context, req *httphead.Request, resp *httphead.Response, stop func() bool) io.ReadCloser {
	c.interim = nil // the head is read: no more interim responses
	c.readTimeout = orDefault(c.t.IdleTimeout, 60*time.Second)
	c.reusable = !c.broken && !resp.Close && !req.Header.HasToken("Connection", "close")
	if resp.Status == 101 {
		stop() // the caller bounds the tunnel
		c.readTimeout, c.writeTimeout = 0, 0
		c.nc.SetDeadline(time.Time{})
		c.t.pool.Discard(c.key, nil) // the connection is the caller's now
		return &Upgraded{c: c}
	}
	if resp.ContentLength == 0 {
		c.release(stop())
		return noBody{}
	}
	// A body that did not come with its head may be an origin with
	// Nagle's algorithm on, waiting for the head's ACK: the next request
	// on this connection asks for prompt ACKs again (quickAck).
	c.quick = c.br.Buffered() == 0
	c.body.Reset(c.br, resp.ContentLength, resp.Chunked)
	return &Body{c: c, ctx: ctx, stop: stop}
}

// release ends an exchange: the connection goes back to the pool when the
// response ended cleanly and nothing unread is buffered, else it closes.
func (c *conn) release(ok bool) {
	if ok && c.reusable && c.br.Buffered() == 0 {
		c.t.pool.Put(c.key, c)
		return
	}
	c.t.pool.Discard(c.key, c)
}

var errBodyClosed = errors.New("client: read on closed body")

type noBody struct{}

func (noBody) Read([]byte) (int, error) { return 0, io.EOF }
func (noBody) Close() error             { return nil }

// Body is a response body. Reading it to io.EOF returns the connection to
// the pool; Close before that closes the connection.
type Body struct {
	c        *conn // nil once the exchange has ended
	ctx      context.Context
	stop     func() bool // ends the watch on ctx; false when it fired
	err      error
	trailers httphead.Header
}

// Read reads the body. Errors other than io.EOF are *Error with Op
// OpReadBody; io.ErrUnexpectedEOF, ErrIdleTimeout and the error of the
// exchange's context, when it ended, are wrapped.
func (b *Body) Read(p []byte) (int, error) {
	if b.c == nil {
		return 0, b.err
	}
	n, err := b.c.body.Read(p)
	switch {
	case err == io.EOF:
		if tr := b.c.body.Trailers(); tr.Len() > 0 {
			b.trailers.CopyFrom(tr)
		}
		b.end(io.EOF, true)
	case err != nil:
		e := &Error{Op: OpReadBody, Addr: b.c.addr, Err: err}
		var ne net.Error
		switch {
		case b.c.aborted.Load():
			e.Err = b.ctx.Err()
		case errors.As(err, &ne) && ne.Timeout():
			e.Err = ErrIdleTimeout
		}
		b.end(e, false)
	}
	return n, b.err
}

// Ready reports whether the next Read returns without waiting on the
// origin: body bytes are buffered, or the body ended (proxy.ReadyBody).
func (b *Body) Ready() bool {
	return b.c == nil || b.c.br.Buffered() > 0
}

// end ends the exchange; a connection whose watch fired is never reused.
func (b *Body) end(err error, ok bool) {
	b.err = err
	b.c.release(b.stop() && ok)
	b.c = nil
}

// Trailers returns the trailer fields of a chunked body, complete once
// Read has returned io.EOF.
func (b *Body) Trailers() *httphead.Header { return &b.trailers }

// Close ends the body, closing the connection if it was not read to the end.
func (b *Body) Close() error {
	if b.c != nil {
		b.end(errBodyClosed, false)
	}
	return nil
}

// Upgraded is the origin connection after 101 Switching Protocols. Bytes
// the origin sent after the head are read first. It has no deadlines; the
// caller bounds the tunnel.
type Upgraded struct{ c *conn }

func (u *Upgraded) Read(p []byte) (int, error)  { return u.c.br.Read(p) }
func (u *Upgraded) Write(p []byte) (int, error) { return u.c.nc.Write(p) }
func (u *Upgraded) Close() error                { return u.c.nc.Close() }

// CloseWrite half-closes the connection when it supports it (TCP, TLS),
// telling the origin the client's side of the tunnel has ended.
func (u *Upgraded) CloseWrite() error {
	if cw, ok := u.c.nc.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return u.c.nc.Close()
}

// NetConn returns the underlying connection (TCP or TLS), for deadlines
// and half-close. Read through Upgraded, not NetConn, to get buffered bytes.
func (u *Upgraded) NetConn() net.Conn { return u.c.nc }
