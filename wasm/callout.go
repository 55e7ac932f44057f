package wasm

import (
	"context"
	"io"
	"strconv"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Map and buffer types of an HTTP call's response.
const (
	mapCallResponseHeaders  = 6
	mapCallResponseTrailers = 7
	bufferCallResponseBody  = 4
)

// Bounds of HTTP callouts.
const (
	maxCallsPerCallback = 8
	maxCallBody         = 1 << 20 // of a call's request and of its response: a longer response is cut
	maxCallTimeout      = 60 * time.Second
)

// callout is an HTTP call a filter dispatched and the host runs when the
// callback that dispatched it returns.
type callout struct {
	token    uint32
	upstream string
	route    *proxy.Route
	req      *httphead.Request
	body     []byte
	timeout  time.Duration
}

// callResult is the response a filter reads in proxy_on_http_call_response.
type callResult struct {
	resp *httphead.Response
	body []byte
}

// hostDispatchHttpCall is proxy_dispatch_http_call: upstream names an
// upstream of the config; headers must carry :method, :path and
// :authority. The call runs when the callback returns (a request's
// stream waits for it) and proxy_on_http_call_response is called on the
// root context with its token.
func hostDispatchHttpCall(s *stream, m api.Memory, p []uint64) uint32 {
	name, ok1 := read(m, p[0], p[1])
	hdrs, ok2 := read(m, p[2], p[3])
	body, ok3 := read(m, p[4], p[5])
	if !ok1 || !ok2 || !ok3 {
		return statusInvalidMemoryAccess
	}
	if s.c == nil || s.phase == "log" || s.f.spec.Upstream == nil || len(s.calls) >= maxCallsPerCallback || len(body) > maxCallBody {
		return statusBadArgument // only a request's stream can wait for a call
	}
	up := s.f.spec.Upstream(string(name))
	if up == nil {
		return statusBadArgument // callouts reach the config's upstreams only
	}
	req := &httphead.Request{}
	var method, path, authority []byte
	if !parsePairs(hdrs, func(k, v []byte) {
		switch string(k) {
		case ":method":
			method = v
		case ":path":
			path = v
		case ":authority":
			authority = v
		default:
			if len(k) > 0 && k[0] != ':' && httphead.IsToken(k) {
				req.Header.Add(k, v)
			}
		}
	}) || len(method) == 0 || len(path) == 0 || path[0] != '/' || len(authority) == 0 {
		return statusBadArgument
	}
	req.SetLine(method, path, authority, []byte("http"))
	req.ProtoMajor, req.ProtoMinor = 1, 1
	timeout := min(time.Duration(uint32(p[8]))*time.Millisecond, maxCallTimeout)
	if timeout <= 0 {
		timeout = maxCallTimeout
	}
	s.inst.lastToken++
	token := s.inst.lastToken
	s.calls = append(s.calls, callout{token: token, upstream: string(name),
		route: &proxy.Route{Name: "wasm:" + s.f.spec.Name + ":" + string(name), Upstream: up},
		req:   req, body: append([]byte(nil), body...), timeout: timeout})
	return okIf(m.WriteUint32Le(uint32(p[9]), token))
}

// runCalls runs the calls the last callback dispatched, one after the
// other, and gives each response to proxy_on_http_call_response (which may
// dispatch more). It returns the first failure of the filter.
func (s *stream) runCalls() error {
	for len(s.calls) > 0 {
		s.called = true
		call := s.calls[0]
		s.calls = s.calls[1:]
		res := s.fetch(call)
		s.call = &res
		nh, size := 0, 0
		if res.resp != nil {
			nh, size = res.resp.Header.Len()+1, len(res.body)
		}
		s.inst.cur = s
		_, err := s.inst.call(onHttpCallResponse, rootID, uint64(call.token), uint64(nh), uint64(size), 0)
		s.inst.cur = nil
		s.call = nil
		if err != nil {
			s.calls = s.calls[:0]
			return err
		}
		s.traceEdits()
	}
	return nil
}

// fetch runs one call; a failed call gives the filter no headers and no
// body, as in Envoy.
func (s *stream) fetch(call callout) callResult {
	ctx, cancel := context.WithTimeout(s.c.Context, call.timeout)
	defer cancel()
	resp, body, err := s.c.Callout(ctx, call.route, call.req, call.body)
	name := s.f.spec.Name + " called " + call.upstream + " " + string(call.req.Path)
	if err != nil {
		s.c.Trace.Add("wasm", name+": failed")
		s.f.log.Warn("wasm filter's HTTP call failed", "upstream", call.upstream, "error", err)
		return callResult{}
	}
	defer body.Close()
	b, err := io.ReadAll(io.LimitReader(body, maxCallBody))
	if err != nil {
		s.c.Trace.Add("wasm", name+": failed")
		return callResult{}
	}
	s.c.Trace.Add("wasm", name+": "+strconv.Itoa(resp.Status))
	out := &httphead.Response{Status: resp.Status}
	out.Header.CopyFrom(&resp.Header)
	return callResult{resp: out, body: b}
}
