package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/trace"
)

// Route is what the Router chose for a request. The engine reads it; an App
// may embed it in its own type and reach that through Ctx.Route.App.
type Route struct {
	Name string
	// Upstream picks the servers for each attempt; nil means the route has
	// no upstream (EarlyRequest must have answered).
	Upstream Upstream
	// Cache, when set, serves the request through a cache.
	Cache Cache
	// ReplayBody is the largest request body (with a known length) kept
	// in memory so that a retry can send it again. Zero: bodies stream
	// through and a request whose body was sent is not retried.
	ReplayBody int64
	// EarlyData accepts requests sent in TLS early data (HTTP/3 0-RTT)
	// when their method is safe; any other early request gets 425.
	EarlyData bool
	// App is the App's own data for the route (e.g. its compiled config).
	App any
}

// Replayable reports whether req's body is kept for retries on route r.
func (r *Route) Replayable(req *httphead.Request) bool {
	return r.ReplayBody > 0 && req.ContentLength > 0 && req.ContentLength <= r.ReplayBody
}

// Ctx is the state of one request as it goes through the phases. The
// engine reuses a Ctx for every request of a connection, so hooks must not
// keep it after Logging. Ctx is a context.Context: it is done when the
// request deadline (timeouts.request) passes, when an HTTP/2 client resets
// its stream or closes its connection, and when the server stops. An
// HTTP/1.1 client that goes away is noticed when a write to it fails,
// which ends the exchange; its request's context is not cancelled before
// that (a cancellation watch on every upstream exchange costs more than
// an exchange left to finish).
type Ctx struct {
	context.Context // the request's context (deadline, HTTP/2 stream reset)

	// Request is the downstream request; hooks must treat it as
	// read-only, but for RequestFilter's edits of its header fields.
	Request *httphead.Request
	// Peer is the address the request came from: the TCP peer, or the
	// address a PROXY protocol header gave.
	Peer netip.AddrPort
	// Client is the client's address: Peer, or, when Peer is a trusted
	// proxy (Options.Trusted), the nearest untrusted address in its
	// X-Forwarded-For. Rules, rate limits and logs use it.
	Client netip.AddrPort
	// TLS is the client's TLS state, nil for cleartext.
	TLS *tls.ConnectionState
	// JA4 is the client's TLS fingerprint, when the listener computes
	// it; "" for cleartext.
	JA4 string
	// Route is the route chosen by the Router.
	Route *Route
	// Trace records every decision made for the request.
	Trace *trace.Trace
	// Status is the status sent to the client (0 until sent), and Bytes the
	// body bytes sent.
	Status int
	Bytes  int64
	// Upstream is the address of the server that answered, "" if none.
	Upstream string
	// Attempts counts upstream attempts.
	Attempts int
	// Buf is scratch space for phases (building keys, formatting fields);
	// it keeps its capacity across requests so that using it allocates
	// nothing in steady state.
	Buf []byte

	state   []any // per-connection state of each Key's owner
	session Session
	engine  *Engine
	out     httphead.Request  // the upstream request
	resp    httphead.Response // the origin's response head, and Respond's
	wrote   bool
	idBuf   []byte // request ID, sent upstream as X-Request-Id
	scratch []byte // formatting space reused across requests

	// body is the request body a filter gave back (SetRequestBody); nil:
	// the session's.
	body io.Reader
	// up is the request body as sent upstream, when there is one.
	up *upBody

	// Interim responses of detached copies' fetches (interim.go).
	gate      *interimGate // made by the first Detach
	gateOpen  bool         // the gate is open for the current request
	parent    *Ctx         // of a detached copy: the Ctx it was made from
	parentReq uint64       // of a detached copy: the request it was made for
}

// ID returns the request ID (also sent upstream as X-Request-Id).
func (c *Ctx) ID() string { return string(c.idBuf) }

// Detach returns a copy of the request state that outlives the request:
// for work the cache does in the background (stale-while-revalidate
// refreshes, fills that clients still wait on after the first one left).
// The copy has its own request, trace and a context that is not cancelled
// when the client goes away. Interim responses its fetches receive reach
// the request's client until the request sends its response head, and
// only then (see Interim).
func (c *Ctx) Detach() *Ctx {
	d := &Ctx{
		Context: context.WithoutCancel(c.Context),
		Request: &httphead.Request{},
		Peer:    c.Peer,
		Client:  c.Client,
		TLS:     c.TLS,
		JA4:     c.JA4,
		Route:   c.Route,
		Trace:   &trace.Trace{},
		engine:  c.engine,
		idBuf:   append([]byte(nil), c.idBuf...),
	}
	copyRequest(d.Request, c.Request)
	d.Trace.Reset(time.Now())
	if c.session != nil {
		c.openGate()
		d.parent, d.parentReq = c, c.gate.last
	}
	if f := c.Trace.Follow; f != nil {
		d.Trace.Follow = f
		f(d.Trace)
	}
	return d
}

// copyRequest makes dst an independent copy of src.
func copyRequest(dst, src *httphead.Request) {
	dst.Reset()
	dst.Paths = src.Paths // SetLine normalises under it; ForwardTarget reads it
	dst.SetLine(src.Method, src.Target, src.Host, src.Scheme)
	dst.Header.CopyFrom(&src.Header)
	dst.ProtoMajor, dst.ProtoMinor = src.ProtoMajor, src.ProtoMinor
	dst.ContentLength = src.ContentLength
	dst.Chunked = src.Chunked
	dst.Upgrade = src.Upgrade
}

// Fetch runs the upstream phases for req and returns the origin's
// response and body; a Cache calls it on a miss (req may be a copy of
// Request with validators added). The body must be closed.
func (c *Ctx) Fetch(req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
	return c.engine.fetch(c, req)
}

// Respond sends a complete response with a small body; EarlyRequest hooks
// use it to answer by themselves.
func (c *Ctx) Respond(status int, header *httphead.Header, body []byte) error {
	r := &c.resp
	r.Reset()
	r.Status = status
	if header != nil {
		r.Header.CopyFrom(header)
	}
	r.ContentLength = int64(len(body))
	if err := c.writeHead(r); err != nil {
		return err
	}
	if len(body) > 0 && httphead.BodyAllowed(c.Request.Method, status) {
		n, err := c.session.Write(body)
		c.Bytes += int64(n)
		if err != nil {
			return err
		}
	}
	return c.session.Finish(nil)
}

// writeHead sends the final response head, with the request's trace when
// it asks for it and may have it: the engine's own answers (no route, a
// limit, an error) carry it as much as an origin's response.
func (c *Ctx) writeHead(r *httphead.Response) error {
	c.closeGate()
	if c.engine != nil && c.engine.wantsTrace(c) {
		c.scratch = c.Trace.AppendHeader(c.scratch[:0])
		r.Header.Add(traceField, c.scratch)
	}
	c.wrote = true
	c.Status = r.Status
	return c.session.WriteHead(r)
}

// SetRequestBody replaces the request body sent upstream with body, of
// length bytes (-1: unknown, sent chunked). A filter that read the body
// from Session().Body() gives back what is to be sent, changed or not.
func (c *Ctx) SetRequestBody(body io.Reader, length int64) {
	c.body = body
	c.Request.ContentLength = length
	c.Request.Chunked = length < 0
}

// Session returns the downstream session (for hooks that stream a
// response of their own).
func (c *Ctx) Session() Session { return c.session }

// Key names a piece of connection state that one owner (an App, an
// Upstream, a hook of an embedder) keeps on the Ctx and reuses across the
// requests of a connection, so that its per-request work allocates
// nothing. Each owner makes its own Key, so owners never overwrite each
// other's state. The state is not reset between requests.
type Key[T any] struct{ id int }

var keyCount atomic.Int64

// NewKey returns a new Key; make keys once, at package initialisation.
func NewKey[T any]() Key[T] { return Key[T]{id: int(keyCount.Add(1) - 1)} }

// Get returns the state stored under k on c, if any.
func (k Key[T]) Get(c *Ctx) (T, bool) {
	if k.id < len(c.state) {
		v, ok := c.state[k.id].(T)
		return v, ok
	}
	var zero T
	return zero, false
}

// Set stores v under k on c.
func (k Key[T]) Set(c *Ctx, v T) {
	if k.id >= len(c.state) {
		c.state = append(c.state, make([]any, k.id+1-len(c.state))...)
	}
	c.state[k.id] = v
}
