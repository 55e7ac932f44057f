package wasm

import (
	"strconv"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Chain is the filters of one route, in the order they see a request;
// they see the response in the reverse order, as in Envoy.
type Chain []*Filter

// stream is one filter's view of one request.
type stream struct {
	f      *Filter
	inst   *instance
	id     uint32
	c      *proxy.Ctx
	resp   *httphead.Response // during the response phase
	local  *localResponse     // set by proxy_send_local_response
	phase  string             // "request" or "response", for the trace
	edits  []byte             // what the current callback changed, for the trace
	failed bool
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
		_, err = inst.call(onContextCreate, uint64(s.id), rootID)
		if err == nil {
			_, err = inst.call(onRequestHeaders, uint64(s.id), uint64(c.Request.Header.Len()+4), eos)
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
	}
	return false, nil
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
		_, err := s.inst.call(onResponseHeaders, uint64(s.id), uint64(resp.Header.Len()+1), 0)
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
