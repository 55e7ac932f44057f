//go:build wasip1

// Command testfilter is the filter the host's tests run; its
// configuration picks what it does: "empty" (nothing), "trap" (panics on
// request headers), "loop" (never returns from request headers), "grow"
// (allocates until its memory limit stops it), "props" (copies host
// properties into response headers), "upper-body" (upper-cases request
// bodies), "count" (counts requests in the shared store, with CAS, tells
// the count in X-Count, and in its counter metric "requests"),
// "tick" (counts its root context's ticks, every 10 ms, in the shared
// store and tells the count in X-Ticks), "queue" (sends each request's
// path through a shared queue it registered; its root context appends
// what it dequeues to the shared key "queued", told in X-Queued),
// "trailers" (copies the response trailer X-Checksum to
// X-Checksum-Seen and the request trailer X-Sum to X-Sum-Seen, removes
// the request trailer X-Secret, and answers 403 to a request whose
// trailers carry X-Deny), "callout" (calls the upstream "auth" for /check before each request
// and tells the origin what it answered in X-Auth-Said), "bad-config"
// (refuses to start).
package main

import (
	"bytes"
	"strconv"

	"github.com/outpost-edge/outpost/examples/wasm/proxywasm"
)

var mode string

// requests is the id of the "count" mode's counter metric.
var requests uint32

// sink keeps "grow" allocations reachable.
var sink [][]byte

func main() {}

func init() {
	proxywasm.Filter.Configure = func(cfg []byte) bool {
		mode = string(cfg)
		if mode == "count" {
			requests = proxywasm.DefineCounter("requests")
		}
		if mode == "tick" && !proxywasm.SetTickPeriod(10) {
			return false
		}
		if mode == "queue" {
			if _, ok := proxywasm.RegisterQueue("paths"); !ok {
				return false
			}
		}
		return mode != "bad-config"
	}
	proxywasm.Filter.QueueReady = func(queue uint32) {
		for {
			item, ok := proxywasm.Dequeue(queue)
			if !ok {
				return
			}
			for {
				old, cas, _ := proxywasm.SharedData("queued")
				if proxywasm.SetSharedData("queued", append(old, item+" "...), cas) {
					break
				}
			}
		}
	}
	proxywasm.Filter.RequestTrailers = func(uint32) proxywasm.Action {
		if mode != "trailers" {
			return proxywasm.Continue
		}
		if _, ok := proxywasm.Header(proxywasm.RequestTrailers, "x-deny"); ok {
			proxywasm.SendLocalResponse(403, "denied by trailer")
			return proxywasm.Pause
		}
		if v, ok := proxywasm.Header(proxywasm.RequestTrailers, "x-sum"); ok {
			proxywasm.SetHeader(proxywasm.RequestTrailers, "x-sum-seen", v)
		}
		proxywasm.RemoveHeader(proxywasm.RequestTrailers, "x-secret")
		return proxywasm.Continue
	}
	proxywasm.Filter.ResponseTrailers = func(uint32) proxywasm.Action {
		if v, ok := proxywasm.Header(proxywasm.ResponseTrailers, "x-checksum"); ok && mode == "trailers" {
			proxywasm.SetHeader(proxywasm.ResponseTrailers, "x-checksum-seen", v)
		}
		return proxywasm.Continue
	}
	proxywasm.Filter.CallResponse = func(_, headers, size uint32) {
		said := "failed"
		if headers > 0 {
			status, _ := proxywasm.Header(proxywasm.CallResponseHeaders, ":status")
			v, _ := proxywasm.Header(proxywasm.CallResponseHeaders, "x-auth")
			said = status + " " + v + " " + string(proxywasm.GetBuffer(proxywasm.CallResponseBody, 0, size))
		}
		proxywasm.SetHeader(proxywasm.RequestHeaders, "x-auth-said", said)
		proxywasm.ContinueRequest()
	}
	proxywasm.Filter.RequestHeaders = func(uint32) proxywasm.Action {
		switch mode {
		case "callout":
			if _, ok := proxywasm.Dispatch("auth", []string{":method", "GET", ":path", "/check", ":authority", "auth", "x-asked-by", "testfilter"}, "", 1000); !ok {
				proxywasm.SetHeader(proxywasm.RequestHeaders, "x-auth-said", "refused")
				return proxywasm.Continue
			}
			return proxywasm.Pause
		case "queue":
			q, ok := proxywasm.ResolveQueue("paths")
			path, _ := proxywasm.Property("request", "path")
			if !ok || !proxywasm.Enqueue(q, path) {
				panic("testfilter: queue not found")
			}
		case "trap":
			panic("testfilter: trap")
		case "loop":
			for n := 0; ; n++ {
				if n < 0 {
					return proxywasm.Continue
				}
			}
		case "grow":
			for {
				sink = append(sink, make([]byte, 1<<20))
			}
		}
		return proxywasm.Continue
	}
	proxywasm.Filter.RequestBody = func(_, size uint32) proxywasm.Action {
		if mode == "upper-body" {
			proxywasm.ReplaceBody(proxywasm.RequestBody, bytes.ToUpper(proxywasm.GetBuffer(proxywasm.RequestBody, 0, size)))
		}
		return proxywasm.Continue
	}
	proxywasm.Filter.Tick = func() {
		for {
			old, cas, _ := proxywasm.SharedData("ticks")
			n, _ := strconv.Atoi(string(old))
			if proxywasm.SetSharedData("ticks", []byte(strconv.Itoa(n+1)), cas) {
				return
			}
		}
	}
	proxywasm.Filter.ResponseHeaders = func(uint32) proxywasm.Action {
		if mode == "queue" {
			queued, _, _ := proxywasm.SharedData("queued")
			proxywasm.SetHeader(proxywasm.ResponseHeaders, "x-queued", string(queued))
		}
		if mode == "tick" {
			ticks, _, _ := proxywasm.SharedData("ticks")
			proxywasm.SetHeader(proxywasm.ResponseHeaders, "x-ticks", string(ticks))
		}
		if mode == "count" {
			for {
				old, cas, _ := proxywasm.SharedData("count")
				n, _ := strconv.Atoi(string(old))
				next := strconv.Itoa(n + 1)
				if proxywasm.SetSharedData("count", []byte(next), cas) {
					proxywasm.Increment(requests, 1)
					proxywasm.SetHeader(proxywasm.ResponseHeaders, "x-count", next)
					return proxywasm.Continue
				}
			}
		}
		if mode != "props" {
			return proxywasm.Continue
		}
		for _, p := range [][]string{{"request", "path"}, {"request", "method"}, {"source", "address"}, {"route_name"}, {"outpost", "cache_status"}, {"plugin_name"}} {
			v, ok := proxywasm.Property(p...)
			if !ok {
				v = "(none)"
			}
			name := "x-prop"
			for _, s := range p {
				name += "-" + s
			}
			proxywasm.SetHeader(proxywasm.ResponseHeaders, name, v)
		}
		return proxywasm.Continue
	}
}
