package h2

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/internal/httpdate"
	"github.com/outpost-edge/outpost/proxy"
)

// stream is one HTTP/2 request as a proxy.Session. A connection reuses its
// streams, with everything they hold, from request to request.
type stream struct {
	c    *conn
	id   uint32
	req  httphead.Request
	pc   *proxy.Ctx // the engine's per-request state, reused
	ctx  *streamCtx
	wake chan struct{} // the loop has changed something this stream waits on

	// under c.mu
	sendWin    int64
	recvWin    int64 // credit the client still has on this stream
	unacked    int64 // body bytes read, credit not yet returned
	received   int64 // body bytes received
	in         []byte
	off        int             // read position in in
	remoteDone bool            // END_STREAM received: the request is whole
	trailers   httphead.Header // the request's trailer section; whole once remoteDone
	resetSent  bool            // RST_STREAM sent or received: the stream is closed
	peerReset  bool            // RST_STREAM received: the client knows it is closed
	err        error

	// owned by the goroutine serving the stream
	pending  bool // the response head waits in head
	ended    bool // END_STREAM sent
	noBody   bool
	tooBig   bool      // the header list went over max_header_bytes (set by the loop before serving)
	max      int64     // limits.max_body_bytes; 0: no limit
	deadline time.Time // for body reads
	timer    *time.Timer
	head     []byte
	lower    []byte
	scratch  []byte
}

func newStream(c *conn) *stream {
	return &stream{c: c, wake: make(chan struct{}, 1)}
}

// reset readies the stream for a new request; called with c.mu held.
func (st *stream) reset(id uint32, peerInit int64) {
	st.id = id
	st.req.Reset()
	if st.ctx == nil || st.ctx.done != nil {
		// Someone took the last context's channel: contexts derived
		// from it may still read it, and the engine state that holds
		// it. Both are left to them, and the stream starts anew.
		st.ctx, st.pc = &streamCtx{}, nil
	} else {
		st.ctx.err = nil
	}
	st.sendWin, st.recvWin, st.unacked, st.received = peerInit, streamWindow, 0, 0
	st.in, st.off = st.in[:0], 0
	st.trailers.Reset()
	st.remoteDone, st.resetSent, st.peerReset, st.err = false, false, false, nil
	st.pending, st.ended, st.noBody, st.tooBig = false, false, false, false
	st.max, st.deadline = 0, time.Time{}
	select {
	case <-st.wake:
	default:
	}
}

// signal wakes the stream's goroutine if it waits.
func (st *stream) signal() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// abort ends the stream's exchange with err; called with c.mu held.
func (st *stream) abort(err error) {
	if st.err == nil {
		st.err = err
	}
	st.ctx.cancel(err)
	st.signal()
}

// serve runs the request through the engine.
func (st *stream) serve() { _ = st.c.serve(st.ctx, st, &st.pc) }

// finish closes the stream after its exchange and frees it.
func (st *stream) finish() {
	c := st.c
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case st.resetSent:
	case !st.ended:
		// A response cut short: the client must not take a truncated
		// body for a whole one.
		c.resetLocked(st.id, http2.ErrCodeInternal)
	case !st.remoteDone:
		// The response is whole but the body is still coming: it is
		// not wanted (RFC 9113 section 8.1).
		c.resetLocked(st.id, http2.ErrCodeNo)
	}
	c.release(st)
}

// runAlone serves the stream on a goroutine of its own.
func (st *stream) runAlone() {
	defer st.c.wg.Done()
	st.serve()
	st.finish()
	_ = st.c.flush()
}

// detach makes the loop move on to a new goroutine if the stream runs
// inline, as it is about to wait.
func (st *stream) detach() { st.c.takeover() }

// proxy.Session

func (st *stream) Request() *httphead.Request { return &st.req }
func (st *stream) Body() io.Reader            { return st }
func (st *stream) ClientAddr() netip.AddrPort { return st.c.client }
func (st *stream) TLS() *tls.ConnectionState  { return st.c.tls }
func (st *stream) JA4() string                { return st.c.ja4 }

// HeadersTooLarge reports whether the request's header list went over
// max_header_bytes: only the fields before the limit were kept, and
// server.CheckStream answers 431.
func (st *stream) HeadersTooLarge() bool { return st.tooBig }

func (st *stream) Upgrade() (io.ReadWriteCloser, error) { return nil, proxy.ErrUpgradeUnsupported }

// LimitBody holds the request body to max bytes.
func (st *stream) LimitBody(max int64) { st.max = max }

// SetReadDeadline bounds the next reads of the request body; a read past
// it fails with an error wrapping os.ErrDeadlineExceeded.
func (st *stream) SetReadDeadline(t time.Time) error {
	st.deadline = t
	return nil
}

var errBodyTimeout = fmt.Errorf("h2: request body: %w", os.ErrDeadlineExceeded)

// Read reads the request body as it arrives, returning the credit the
// client spent on it once half a window is owed.
func (st *stream) Read(p []byte) (int, error) {
	c := st.c
	if st.req.Expect100 {
		// The client waits for this before it sends the body.
		st.req.Expect100 = false
		if err := st.writeHeaders(appendStatus(st.head[:0], 100), false); err != nil {
			return 0, err
		}
	}
	for {
		c.mu.Lock()
		if n := copy(p, st.in[st.off:]); n > 0 {
			st.off += n
			if st.off == len(st.in) {
				st.in, st.off = st.in[:0], 0
			}
			st.consumed(int64(n))
			over := st.max > 0 && st.received > st.max
			c.mu.Unlock()
			_ = c.flush()
			if over {
				return n, proxy.Errorf(413, proxy.FromDownstream, "request body too large", nil)
			}
			return n, nil
		}
		done, err := st.remoteDone, st.err
		c.mu.Unlock()
		switch {
		case err != nil:
			return 0, err
		case done:
			return 0, io.EOF
		}
		if err := st.wait(); err != nil {
			return 0, err
		}
	}
}

// Trailers returns the request's trailer section once the body has been
// read to its end, nil before (proxy.Trailered).
func (st *stream) Trailers() *httphead.Header {
	st.c.mu.Lock()
	defer st.c.mu.Unlock()
	if !st.remoteDone || st.off < len(st.in) {
		return nil
	}
	return &st.trailers
}

// consumed returns the credit for n bytes read; called with c.mu held.
func (st *stream) consumed(n int64) {
	c := st.c
	c.credit(n)
	st.unacked += n
	if st.unacked >= streamWindow/2 && !st.remoteDone && !st.resetSent {
		c.wbuf = appendWindowUpdate(c.wbuf, st.id, uint32(st.unacked))
		st.recvWin += st.unacked
		st.unacked = 0
	}
}

// wait blocks until the loop signals the stream or the read deadline
// passes.
func (st *stream) wait() error {
	st.detach()
	if st.deadline.IsZero() {
		<-st.wake
		return nil
	}
	d := time.Until(st.deadline)
	if d <= 0 {
		return errBodyTimeout
	}
	if st.timer == nil {
		st.timer = time.NewTimer(d)
	} else {
		st.timer.Reset(d)
	}
	defer st.timer.Stop()
	select {
	case <-st.wake:
		return nil
	case <-st.timer.C:
		return errBodyTimeout
	}
}

func (st *stream) WriteHead(resp *httphead.Response) error {
	st.noBody = !httphead.BodyAllowed(st.req.Method, resp.Status)
	b := appendStatus(st.head[:0], resp.Status)
	b = st.appendFields(b, &resp.Header)
	if resp.ContentLength >= 0 && resp.Status != 304 && resp.Status != 204 {
		b = append(b, 0x0f, 28-15) // content-length, static index 28
		b = appendDecimal(b, resp.ContentLength)
	}
	if len(st.c.altSvc) > 0 && !resp.Header.Has("Alt-Svc") {
		b = appendField(b, altSvcName, st.c.altSvc, &st.lower)
	}
	if !resp.Header.Has("Date") {
		b = append(b, 0x0f, 33-15) // date, static index 33
		b = appendInt(b, 7, 0, uint64(len(httpdate.Now())))
		b = append(b, httpdate.Now()...)
	}
	// The head waits for the first body bytes or the end: a response
	// without a body then ends with its HEADERS frame, as a gRPC
	// trailers-only response must.
	st.head = b
	st.pending = true
	return nil
}

// FlushHead sends the head WriteHead left pending (proxy.HeadFlusher).
// The engine calls it just before it waits on the origin: a stream that
// runs inline hands the loop on first, so that the head leaves now rather
// than when the loop's turn ends.
func (st *stream) FlushHead() error {
	if !st.pending || st.noBody {
		return nil
	}
	st.detach()
	return st.sendHead(false)
}

// sendHead writes the head WriteHead left pending.
func (st *stream) sendHead(end bool) error {
	st.pending = false
	return st.writeHeaders(st.head, end)
}

var altSvcName = []byte("alt-svc")

// appendDecimal appends n as a string literal.
func appendDecimal(b []byte, n int64) []byte {
	var d [20]byte
	i := len(d)
	for {
		i--
		d[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	b = append(b, byte(len(d)-i))
	return append(b, d[i:]...)
}

func (st *stream) appendFields(b []byte, h *httphead.Header) []byte {
	for i := 0; i < h.Len(); i++ {
		name, value := h.Field(i)
		if skipResponseField(name) {
			continue
		}
		b = appendField(b, name, value, &st.lower)
	}
	return b
}

// WriteInterim sends an interim response (103 Early Hints) as a HEADERS
// frame of its own.
func (st *stream) WriteInterim(resp *httphead.Response) error {
	b := appendStatus(st.head[:0], resp.Status)
	b = st.appendFields(b, &resp.Header)
	st.head = b
	return st.writeHeaders(b, false)
}

// writeHeaders sends a header block, in CONTINUATION frames past the
// client's frame size.
func (st *stream) writeHeaders(block []byte, end bool) error {
	c := st.c
	c.mu.Lock()
	if st.err != nil {
		err := st.err
		c.mu.Unlock()
		return err
	}
	t, flags := http2.FrameHeaders, http2.Flags(0)
	if end {
		flags = http2.FlagHeadersEndStream
		st.ended = true
	}
	for {
		n := min(len(block), c.peerFrame)
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		c.wbuf = appendFrame(c.wbuf, t, flags, st.id, block[:n])
		block = block[n:]
		if len(block) == 0 {
			break
		}
		t, flags = http2.FrameContinuation, 0
	}
	c.lastFrame = -1 // END_STREAM goes only on DATA frames after the fact
	c.mu.Unlock()
	return st.sent()
}

// sent ends a write: a stream on its own goroutine writes its frames now;
// one running inline leaves them for the end of the loop's turn, unless
// they pile up.
func (st *stream) sent() error {
	c := st.c
	if c.inline.Load() == st {
		c.mu.Lock()
		big := len(c.wbuf) >= flushAt
		c.mu.Unlock()
		if !big {
			return nil
		}
	}
	if err := c.flush(); err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.wbuf) >= flushAt && c.writing && c.werr == nil {
		c.wcond.Wait()
	}
	return c.werr
}

// Write sends body bytes in DATA frames as the flow control windows allow.
func (st *stream) Write(p []byte) (int, error) {
	if st.noBody {
		return len(p), nil
	}
	if st.pending {
		if err := st.sendHead(false); err != nil {
			return 0, err
		}
	}
	c := st.c
	written := 0
	for len(p) > 0 {
		c.mu.Lock()
		if st.err != nil {
			err := st.err
			c.mu.Unlock()
			return written, err
		}
		n := int(min(int64(len(p)), st.sendWin, c.sendWin, int64(c.peerFrame)))
		if n <= 0 {
			c.mu.Unlock()
			if err := st.sent(); err != nil {
				return written, err
			}
			if err := st.waitWindow(); err != nil {
				return written, err
			}
			continue
		}
		st.sendWin -= int64(n)
		c.sendWin -= int64(n)
		c.lastFrame = len(c.wbuf)
		c.wbuf = appendFrame(c.wbuf, http2.FrameData, 0, st.id, p[:n])
		c.mu.Unlock()
		written += n
		p = p[n:]
	}
	return written, st.sent()
}

// waitWindow waits for flow control credit, up to the write timeout.
func (st *stream) waitWindow() error {
	st.detach()
	t := time.NewTimer(st.c.srv.lim.WriteTimeout)
	defer t.Stop()
	select {
	case <-st.wake:
		return nil
	case <-t.C:
		return errors.New("h2: no flow control credit from the client within the write timeout")
	}
}

// Finish ends the stream: with trailers in a last HEADERS frame, else by
// setting END_STREAM on the head if it is still pending or on the last
// DATA frame if it is still in the buffer, else with an empty DATA frame.
func (st *stream) Finish(trailers *httphead.Header) error {
	c := st.c
	hasTrailers := trailers != nil && trailers.Len() > 0 && !st.noBody
	if st.pending {
		if err := st.sendHead(!hasTrailers); err != nil || !hasTrailers {
			return err
		}
	}
	if hasTrailers {
		st.head = st.appendFields(st.head[:0], trailers)
		return st.writeHeaders(st.head, true)
	}
	c.mu.Lock()
	if st.err != nil {
		err := st.err
		c.mu.Unlock()
		return err
	}
	st.ended = true
	if i := c.lastFrame; i >= 0 && streamOf(c.wbuf[i:]) == st.id {
		c.wbuf[i+4] |= byte(http2.FlagDataEndStream) // the same bit for HEADERS
	} else {
		c.wbuf = appendFrame(c.wbuf, http2.FrameData, http2.FlagDataEndStream, st.id, nil)
	}
	c.lastFrame = -1
	c.mu.Unlock()
	return st.sent()
}

func streamOf(frame []byte) uint32 {
	return uint32(frame[5]&0x7f)<<24 | uint32(frame[6])<<16 | uint32(frame[7])<<8 | uint32(frame[8])
}

// streamCtx is a stream's context: cancelled when the client resets the
// stream, the connection ends or the request is over. It makes its channel
// only when asked for one, and is reused with its stream until then.
type streamCtx struct {
	mu   sync.Mutex
	done chan struct{}
	err  error
}

func (x *streamCtx) cancel(err error) {
	x.mu.Lock()
	if x.err == nil {
		x.err = err
		if x.done != nil {
			close(x.done)
		}
	}
	x.mu.Unlock()
}

func (x *streamCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (x *streamCtx) Value(any) any               { return nil }

func (x *streamCtx) Done() <-chan struct{} {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.done == nil {
		x.done = make(chan struct{})
		if x.err != nil {
			close(x.done)
		}
	}
	return x.done
}

func (x *streamCtx) Err() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.err != nil {
		return context.Canceled
	}
	return nil
}
