package proxy

import (
	"sync"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/trace"
)

// InterimWriter is implemented by sessions that can send interim (1xx)
// responses ahead of the final one.
type InterimWriter interface {
	// WriteInterim sends resp, a 1xx other than 100 and 101, at once.
	// It is called only before WriteHead, any number of times. The
	// session adds no framing; resp.Header holds the fields to send.
	WriteInterim(resp *httphead.Response) error
}

// Interim relays an interim response the origin sent before its final one
// to the client, as a proxy must (RFC 9110 section 15.2; 103 Early Hints,
// RFC 8297): the upstream transport calls it for each 1xx but 101. resp is
// the transport's and may be changed. An interim response is never stored
// and none of its fields reach the final response (the transport reads
// that into a reset head).
//
// Not relayed: 100 Continue, since the session answers a client's
// "Expect: 100-continue" itself when the body is first read and the
// expectation is never forwarded, so an origin's 100 answers nothing the
// client asked or what it has already had; anything to an HTTP/1.0 client
// (RFC 9110 section 15.2); anything once the final head is sent; and the
// interim responses of fetches the proxy makes on its own (background
// refreshes). Each decision goes to the trace ("interim=103").
func (c *Ctx) Interim(resp *httphead.Response) {
	if c.session != nil {
		c.Trace.Add(c.relayInterim(resp))
		return
	}
	// A detached copy: the request it was made for takes the response
	// while its gate is open for this copy.
	p := c.parent
	if p == nil {
		return
	}
	g := p.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open != c.parentReq {
		c.Trace.Add("interim-dropped", "the request it was fetched for has been answered")
		return
	}
	if len(g.events) < maxGateEvents {
		stage, detail := p.relayInterim(resp)
		g.events = append(g.events, trace.Event{At: time.Since(p.Trace.Start), Stage: stage, Detail: detail})
	}
}

// maxGateEvents bounds the interim responses relayed through a gate for
// one request (the transport bounds them too).
const maxGateEvents = 16

// relayInterim sends resp to c's client when it may, and returns the
// trace event that says what it did.
func (c *Ctx) relayInterim(resp *httphead.Response) (stage, detail string) {
	iw, ok := c.session.(InterimWriter)
	switch {
	case resp.Status == 100:
		return "interim-dropped", "100 Continue: the proxy answers the client's expectation itself"
	case c.Request.ProtoMajor == 1 && c.Request.ProtoMinor == 0:
		return "interim-dropped", "HTTP/1.0 client"
	case c.wrote:
		return "interim-dropped", "the response head is sent"
	case !ok:
		return "interim-dropped", "the client's protocol cannot carry it"
	}
	resp.Header.RemoveHopByHop()
	resp.Header.Del("Content-Length")
	c.engine.addVia(&resp.Header, resp.ProtoMajor, resp.ProtoMinor)
	if iw.WriteInterim(resp) != nil {
		return "interim-dropped", "write to the client failed"
	}
	return "interim", statusText(resp.Status)
}

// interimGate lets the fetches of detached copies of a Ctx (the fill that
// the request leads on a cache miss) relay interim responses to its
// client until the request writes its response head. A copy that works
// beside the request (a background refresh) or outlives it finds the gate
// closed, or open for a later request of the connection, and relays
// nothing: the mutex orders its writes to the session before the final
// head, and the request number keeps them from reaching another request.
// The request's own goroutine never reads the request body between
// Detach and the final head (a detached fetch sends none), so the session
// is not written by two goroutines at once.
type interimGate struct {
	mu     sync.Mutex
	open   uint64        // the number of the request the gate is open for; 0 when closed
	last   uint64        // the last number given
	events []trace.Event // what went through, for the request's trace
}

// openGate opens c's gate for the current request, once.
func (c *Ctx) openGate() {
	if c.gate == nil {
		c.gate = &interimGate{}
	}
	if c.gateOpen {
		return
	}
	g := c.gate
	g.mu.Lock()
	g.last++
	g.open = g.last
	g.events = g.events[:0]
	g.mu.Unlock()
	c.gateOpen = true
}

// closeGate closes c's gate if it is open and traces what went through
// it. It costs a field test when no detached copy was made.
func (c *Ctx) closeGate() {
	if !c.gateOpen {
		return
	}
	g := c.gate
	g.mu.Lock()
	g.open = 0
	c.Trace.Events = append(c.Trace.Events, g.events...)
	g.events = g.events[:0]
	g.mu.Unlock()
	c.gateOpen = false
}
