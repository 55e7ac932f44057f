package proxy

import (
	"io"
	"strconv"
	"sync"

	"github.com/outpost-edge/outpost/httphead"
)

// upBody is the request body as the engine hands it to an upstream. When
// the body ends it takes the client's trailer section, drops the fields a
// trailer section must not carry, runs RequestTrailersFilter on it and
// gives it to the upstream client (Trailers).
//
// An HTTP/2 upstream reads the body on a goroutine of its own, so the end
// may come while the request's goroutine runs the response phases. The
// filter runs only while that goroutine waits for the response head (it
// tells the body when the head has come: HeadReceived), and never after
// the request has ended (end): mu orders the three.
type upBody struct {
	r   io.Reader
	src Trailered // the session's body, when its protocol carries trailers
	c   *Ctx

	mu       sync.Mutex
	ended    bool // the body has ended: trailers and err are final
	headIn   bool // the response head has come: no filter may run
	closed   bool // the request has ended
	late     int  // trailer fields sent after the head, unfiltered
	trailers *httphead.Header
	err      error // the filter's, returned at every end
}

// newUpBody wraps r, the request body to send, whose trailers come from
// the session's body.
func (c *Ctx) newUpBody(r io.Reader) *upBody {
	b := &upBody{r: r, c: c}
	if c.session != nil {
		b.src, _ = c.session.Body().(Trailered)
	}
	c.up = b
	return b
}

func (b *upBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		if ferr := b.end(); ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

// end takes the trailer section at the body's end, once.
func (b *upBody) end() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended || b.closed {
		return b.err
	}
	b.ended = true
	if b.src == nil {
		return nil
	}
	t := b.src.Trailers()
	if t == nil || t.Len() == 0 {
		return nil
	}
	dropped := t.RemoveNotInTrailers()
	if t.Len() == 0 {
		return nil
	}
	b.trailers = t
	if b.headIn {
		b.late = t.Len()
		return nil
	}
	c := b.c
	c.Trace.Add("request-trailers", strconv.Itoa(t.Len())+" fields, "+strconv.Itoa(dropped)+" dropped")
	if f := c.engine.reqTF; f != nil {
		b.err = f.RequestTrailers(c, t)
	}
	return b.err
}

// Trailers returns the trailer section to send after the body, nil for
// none; valid once the body has ended (Trailered).
func (b *upBody) Trailers() *httphead.Header { return b.trailers }

// HeadReceived tells the body that the request's goroutine has its
// response head (or failed) and runs the response phases: a body that
// ends from now on sends its trailers unfiltered.
func (b *upBody) HeadReceived() {
	b.mu.Lock()
	b.headIn = true
	b.mu.Unlock()
}

// replay makes the body read r again, for another attempt; a body that
// has ended keeps its trailers and its filter's verdict.
func (b *upBody) replay(r io.Reader) { b.r = r }

// endUpBody ends the request body's part in the request: a body an
// upstream goes on reading runs no filter any more. Trailers that went
// unfiltered are recorded in the trace.
func (c *Ctx) endUpBody() {
	b := c.up
	if b == nil {
		return
	}
	b.mu.Lock()
	b.closed = true
	late := b.late
	b.mu.Unlock()
	if late > 0 {
		c.Trace.Add("request-trailers", strconv.Itoa(late)+" fields after the response head: not filtered")
	}
}
