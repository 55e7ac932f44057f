package wasm

import (
	"bytes"
	"io"
	"strconv"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Chain is the filters of one route, in the order they see a request;
// they see the response in the reverse order, as in Envoy.
type Chain []*Filter

// stream is one filter's view of one request.
type stream struct {
	f       *Filter
	inst    *instance
	id      uint32
	c       *proxy.Ctx
	resp    *httphead.Response // during the response phase
	trail   *httphead.Header   // the trailers, in a trailer callback
	trailOf uint64             // which: mapRequestTrailers or mapResponseTrailers
	local   *localResponse     // set by proxy_send_local_response
	body    []byte             // the body being filtered, in a body callback
	bodyOf  uint64             // which: bufferRequestBody or bufferResponseBody
	inBody  bool               // in a body callback
	phase   string             // "request" or "response", for the trace
	edits   []byte             // what the current callback changed, for the trace
	calls   []callout          // HTTP calls the current callback dispatched
	call    *callResult        // in proxy_on_http_call_response: the call's response
	called  bool               // the stream waited for HTTP calls
	failed  bool
}

type localResponse struct {
	status  int
	header  httphead.Header
	body    []byte
	details string
}

// state is a connection's filter state, reused across its requests.
type state struct{ streams []stream }

var stateKey = proxy.NewKey[*state]()

// Request runs the filters' request header callbacks, after routing and
// before the cache. A filter's local response answers the request
// (answered true); a failing filter fails it (a 500 naming the filter)
// unless the filter is fail_open.
func (ch Chain) Request(c *proxy.Ctx) (answered bool, err error) {
	st, ok := stateKey.Get(c)
	if !ok {
		st = &state{}
		stateKey.Set(c, st)
	}
	st.streams = st.streams[:0]
	eos := uint64(0)
	if c.Request.ContentLength == 0 && !c.Request.Chunked {
		eos = 1
	}
	for _, f := range ch {
		st.streams = append(st.streams, stream{f: f, c: c, phase: "request", edits: st.spareEdits()})
		s := &st.streams[len(st.streams)-1]
		inst, err := f.get()
		if err != nil {
			if err := s.fail(err); err != nil {
				return false, err
			}
			continue
		}
		s.inst = inst
		inst.lastID++
		s.id = inst.lastID
		inst.cur = s
		var action uint64
		_, err = inst.call(onContextCreate, uint64(s.id), rootID)
		if err == nil {
			action, err = inst.call(onRequestHeaders, uint64(s.id), uint64(c.Request.Header.Len()+4), eos)
		}
		if err == nil {
			err = s.runCalls()
		}
		inst.cur = nil
		if err != nil {
			if err := s.fail(err); err != nil {
				return false, err
			}
			continue
		}
		s.traceEdits()
		if l := s.local; l != nil {
			c.Trace.Add("wasm", f.spec.Name+" answered "+strconv.Itoa(l.status))
			return true, c.Respond(l.status, &l.header, l.body)
		}
		s.tracePause(action)
	}
	if limit := ch.bodyLimit(); limit > 0 && eos == 0 {
		return ch.requestBody(c, st, limit)
	}
	return false, nil
}

// bodyLimit is the largest body any filter of the chain reads.
func (ch Chain) bodyLimit() int64 {
	var n int64
	for _, f := range ch {
		n = max(n, f.spec.BodyLimit)
	}
	return n
}

// requestBody buffers the request body and runs the body callback of each
// filter that reads bodies that large; the body sent upstream is what they
// leave.
func (ch Chain) requestBody(c *proxy.Ctx, st *state, limit int64) (bool, error) {
	r := c.Session().Body()
	body, over, err := readUpTo(r, limit)
	if err != nil {
		return false, proxy.Errorf(400, proxy.FromDownstream, "request body unreadable", err)
	}
	if over {
		c.Trace.Add("wasm", "request body over body_limit, not filtered")
		c.SetRequestBody(io.MultiReader(bytes.NewReader(body), r), c.Request.ContentLength)
		return false, nil
	}
	eos := uint64(1)
	if t, ok := r.(proxy.Trailered); ok {
		if tr := t.Trailers(); tr != nil && tr.Len() > 0 {
			eos = 0 // proxy_on_request_trailers follows
		}
	}
	for k := range st.streams {
		s := &st.streams[k]
		if s.inst == nil || s.failed || s.f.spec.BodyLimit < int64(len(body)) {
			continue
		}
		answered, err := s.bodyCallback(onRequestBody, bufferRequestBody, &body, eos)
		if answered || err != nil {
			if s.local != nil {
				return true, c.Respond(s.local.status, &s.local.header, s.local.body)
			}
			return false, err
		}
	}
	c.SetRequestBody(bytes.NewReader(body), int64(len(body)))
	return false, nil
}

// bodyCallback runs one filter's body callback over *body, which it may
// replace; eos says whether the stream ends with it (no trailers follow).
// answered reports a local response; err a failure that fails the
// request.
func (s *stream) bodyCallback(cb int, which uint64, body *[]byte, eos uint64) (answered bool, err error) {
	s.body, s.bodyOf, s.inBody = *body, which, true
	s.inst.cur = s
	var action uint64
	action, err = s.inst.call(cb, uint64(s.id), uint64(len(*body)), eos)
	if err == nil {
		err = s.runCalls()
	}
	s.inst.cur = nil
	s.inBody = false
	*body, s.body = s.body, nil
	if err != nil {
		return false, s.fail(err)
	}
	s.traceEdits()
	if l := s.local; l != nil {
		s.c.Trace.Add("wasm", s.f.spec.Name+" answered "+strconv.Itoa(l.status))
		return true, nil
	}
	s.tracePause(action)
	return false, nil
}

// actionPause is the Action a callback returns to stop the stream until
// the filter continues it.
const actionPause = 1

// tracePause records a callback that asked to pause the stream with no
// HTTP call to wait for: nothing could continue it, so it goes on.
func (s *stream) tracePause(action uint64) {
	if uint32(action) == actionPause && !s.called {
		s.c.Trace.Add("wasm", s.f.spec.Name+" paused "+s.phase+" with nothing to wait for: continued")
	}
}

// ResponseBody runs the response body callbacks of the filters that read
// bodies, in reverse order, over the whole body (buffered when it
// streams); a body over every filter's body_limit passes unfiltered.
func (ch Chain) ResponseBody(c *proxy.Ctx, resp *httphead.Response, bodyBytes []byte, r io.Reader) ([]byte, io.Reader, error) {
	limit := ch.bodyLimit()
	st, ok := stateKey.Get(c)
	if limit == 0 || !ok || len(st.streams) == 0 || !httphead.BodyAllowed(c.Request.Method, resp.Status) {
		return bodyBytes, r, nil
	}
	body := bodyBytes // shared with the cache: replaced, never written to
	if body == nil && r != nil {
		var over bool
		var err error
		if body, over, err = readUpTo(r, limit); err != nil {
			return nil, nil, err
		}
		if over {
			c.Trace.Add("wasm", "response body over body_limit, not filtered")
			return nil, io.MultiReader(bytes.NewReader(body), r), nil
		}
	}
	for k := len(st.streams) - 1; k >= 0; k-- {
		s := &st.streams[k]
		if s.inst == nil || s.failed || s.f.spec.BodyLimit < int64(len(body)) {
			continue
		}
		s.resp, s.phase = resp, "response"
		answered, err := s.bodyCallback(onResponseBody, bufferResponseBody, &body, 1)
		if err != nil {
			return nil, nil, err
		}
		if answered {
			return nil, nil, &proxy.Error{Status: s.local.status, Reason: string(s.local.body), Source: proxy.FromInternal}
		}
	}
	resp.ContentLength = int64(len(body))
	if body == nil {
		body = []byte{} // sent as an empty body, not as "no body in memory"
	}
	return body, nil, nil
}

// readUpTo reads r to its end, or limit+1 bytes when it is longer (over).
func readUpTo(r io.Reader, limit int64) (b []byte, over bool, err error) {
	b, err = io.ReadAll(io.LimitReader(r, limit+1))
	return b, int64(len(b)) > limit, err
}

// spareEdits returns an edits buffer left by an earlier request, if any.
func (st *state) spareEdits() []byte {
	n := len(st.streams)
	if n < cap(st.streams) {
		return st.streams[:n+1][n].edits[:0]
	}
	return nil
}

// Response runs the response header callbacks of the filters that saw
// the request, in reverse order, before the head is sent.
func (ch Chain) Response(c *proxy.Ctx, resp *httphead.Response) error {
	st, ok := stateKey.Get(c)
	if !ok {
		return nil
	}
	for k := len(st.streams) - 1; k >= 0; k-- {
		s := &st.streams[k]
		if s.inst == nil || s.failed {
			continue
		}
		s.resp, s.phase = resp, "response"
		s.inst.cur = s
		action, err := s.inst.call(onResponseHeaders, uint64(s.id), uint64(resp.Header.Len()+1), 0)
		if err == nil {
			err = s.runCalls()
		}
		s.inst.cur = nil
		if err != nil {
			if err := s.fail(err); err != nil {
				return err
			}
			continue
		}
		s.traceEdits()
		if l := s.local; l != nil {
			// The head is not sent yet, so the filter's answer replaces
			// the response; its body is the error's reason.
			c.Trace.Add("wasm", s.f.spec.Name+" answered "+strconv.Itoa(l.status))
			return &proxy.Error{Status: l.status, Reason: string(l.body), Source: proxy.FromInternal}
		}
		s.tracePause(action)
	}
	return nil
}

// Store runs the response header callbacks on the origin's response
// before the cache stores it (wasm.response: before_store). On a fetch
// of the cache's own (a background refresh, a fill the client left), no
// request callbacks ran on c: the filters get contexts of their own for
// the response, ended at once.
func (ch Chain) Store(c *proxy.Ctx, resp *httphead.Response) error {
	if st, ok := stateKey.Get(c); ok && len(st.streams) > 0 {
		return ch.Response(c, resp)
	}
	st := &state{}
	stateKey.Set(c, st)
	defer Log(c)
	for _, f := range ch {
		st.streams = append(st.streams, stream{f: f, c: c, phase: "response"})
		s := &st.streams[len(st.streams)-1]
		inst, err := f.get()
		if err == nil {
			s.inst = inst
			inst.lastID++
			s.id = inst.lastID
			_, err = inst.call(onContextCreate, uint64(s.id), rootID)
		}
		if err != nil {
			if err := s.fail(err); err != nil {
				return err
			}
		}
	}
	return ch.Response(c, resp)
}

// RequestTrailers runs the request trailer callbacks of the filters, in
// order, when the request body ends (proxy.RequestTrailersFilter); they
// may edit the trailers sent upstream, and a local response answers the
// request, as the head has not been sent.
func (ch Chain) RequestTrailers(c *proxy.Ctx, trailers *httphead.Header) error {
	return ch.trailers(c, trailers, onRequestTrailers, mapRequestTrailers)
}

// ResponseTrailers runs the response trailer callbacks of the filters that
// saw the response, in reverse order, after its body was sent; they may
// edit the trailers. The head is sent: a local response cannot answer
// any more, and a failing filter aborts the response.
func (ch Chain) ResponseTrailers(c *proxy.Ctx, trailers *httphead.Header) error {
	return ch.trailers(c, trailers, onResponseTrailers, mapResponseTrailers)
}

// trailers runs one trailer callback (cb) of each filter that saw the
// request: in the request's order for request trailers, in reverse for
// response trailers.
func (ch Chain) trailers(c *proxy.Ctx, trailers *httphead.Header, cb int, mapType uint64) error {
	st, ok := stateKey.Get(c)
	if !ok {
		return nil
	}
	n := len(st.streams)
	for i := range n {
		k := i
		phase := "request trailers"
		if mapType == mapResponseTrailers {
			k, phase = n-1-i, "response trailers"
		}
		s := &st.streams[k]
		if s.inst == nil || s.failed {
			continue
		}
		s.trail, s.trailOf, s.phase = trailers, mapType, phase
		s.inst.cur = s
		_, err := s.inst.call(cb, uint64(s.id), uint64(trailers.Len()))
		s.inst.cur = nil
		s.trail = nil
		if err != nil {
			if err := s.fail(err); err != nil {
				return err
			}
			continue
		}
		s.traceEdits()
		if l := s.local; l != nil && mapType == mapRequestTrailers {
			c.Trace.Add("wasm", s.f.spec.Name+" answered "+strconv.Itoa(l.status))
			return &proxy.Error{Status: l.status, Reason: string(l.body), Source: proxy.FromInternal}
		}
	}
	return nil
}

// Log runs the log, done and delete callbacks of every filter that saw
// the request and gives their instances back. It runs once per request,
// whatever happened to it.
func Log(c *proxy.Ctx) {
	st, ok := stateKey.Get(c)
	if !ok {
		return
	}
	for k := range st.streams {
		s := &st.streams[k]
		if s.inst == nil {
			continue
		}
		if !s.failed {
			s.phase = "log"
			s.inst.cur = s
			_, err := s.inst.call(onLog, uint64(s.id))
			if err == nil {
				_, err = s.inst.call(onDone, uint64(s.id))
			}
			if err == nil {
				_, err = s.inst.call(onDelete, uint64(s.id))
			}
			s.inst.cur = nil
			if err != nil {
				s.f.log.Warn("wasm filter failed after the response", "error", err)
			}
		}
		s.f.put(s.inst)
		s.inst, s.c, s.resp, s.local = nil, nil, nil, nil
	}
	st.streams = st.streams[:0]
}

// fail records a filter's failure: the request fails with a 500 naming the
// filter, or, for a fail_open filter, goes on without it.
func (s *stream) fail(err error) error {
	s.failed = true
	s.f.failures.Add(1)
	name := s.f.spec.Name
	s.f.log.Warn("wasm filter failed", "phase", s.phase, "error", err)
	if s.f.spec.FailOpen {
		s.c.Trace.Add("wasm", name+" failed, skipped (fail_open)")
		return nil
	}
	s.c.Trace.Add("wasm", name+" failed")
	return proxy.Errorf(500, proxy.FromInternal, "filter "+name+" failed", err)
}

// edit notes a change the filter made, for the trace.
func (s *stream) edit(op string, name []byte) {
	if len(s.edits) > 0 {
		s.edits = append(s.edits, ", "...)
	}
	s.edits = append(append(append(s.edits, op...), ' '), name...)
}

// traceEdits records what the last callback changed, if anything.
func (s *stream) traceEdits() {
	if len(s.edits) == 0 {
		return
	}
	s.c.Trace.Add("wasm", s.f.spec.Name+" "+s.phase+": "+string(s.edits))
	s.edits = s.edits[:0]
}
