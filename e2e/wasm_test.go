package e2e

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/wasm/wasmtest"
)

// wasmEdge starts a node whose routes run the example Proxy-Wasm filters,
// built with the standard Go toolchain, in front of an origin that
// echoes the request headers the filters set or should have removed.
func wasmEdge(t *testing.T) *edge {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Server", "origin/1.0")
		w.Header().Set("X-Seen-Variant", r.Header.Get("X-Variant"))
		w.Header().Set("X-Seen-Authorization", r.Header.Get("Authorization"))
		w.Header().Set("X-Seen-Auth-Said", r.Header.Get("X-Auth-Said"))
		switch {
		case r.URL.Path == "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id": 7, "internal": "x"}`)
		case r.Method == "POST":
			b, _ := io.ReadAll(r.Body) // all of it first: net/http's HTTP/1 server is not full duplex
			w.Write(b)
		default:
			io.WriteString(w, "from origin")
		}
	}))
	auth := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Auth", r.Method+" "+r.URL.Path+" "+r.Header.Get("X-Asked-By"))
		io.WriteString(w, "yes")
	}))
	return startEdge(t, `
upstreams:
  origin: {servers: [{addr: "{{ORIGIN}}"}], first_byte_timeout: 2s}
  auth: {servers: [{addr: "{{AUTH}}"}], first_byte_timeout: 2s}
wasm:
  filters:
    ab: {file: "{{AB}}", config: "100"}
    headers: {file: "{{HEADERS}}", config: "X-Frame-Options: DENY"}
    token: {file: "{{TOKEN}}", config: "s3cret"}
    trap: {file: "{{TEST}}", config: trap}
    loop: {file: "{{TEST}}", config: loop, call_timeout: 100ms}
    skipped: {file: "{{TEST}}", config: trap, fail_open: true}
    json: {file: "{{JSON}}", config: '{"edge": "outpost", "internal": null}', body_limit: 64KiB}
    upper: {file: "{{TEST}}", config: upper-body, body_limit: 1KiB}
    count: {file: "{{TEST}}", config: count}
    tick: {file: "{{TEST}}", config: tick}
    queue: {file: "{{TEST}}", config: queue}
    callout: {file: "{{TEST}}", config: callout}
  global: [headers]
routes:
  - {name: ab, match: {path_prefix: /ab}, upstream: origin, filters: [ab]}
  - {name: token, match: {path_prefix: /token}, upstream: origin, filters: [token]}
  - {name: trap, match: {path_prefix: /trap}, upstream: origin, filters: [trap]}
  - {name: loop, match: {path_prefix: /loop}, upstream: origin, filters: [loop]}
  - {name: open, match: {path_prefix: /open}, upstream: origin, filters: [skipped]}
  - {name: json, match: {path_prefix: /json}, upstream: origin, filters: [json]}
  - {name: upper, match: {path_prefix: /upper}, upstream: origin, filters: [upper]}
  - {name: count, match: {path_prefix: /count}, upstream: origin, filters: [count]}
  - {name: tick, match: {path_prefix: /tick}, upstream: origin, filters: [tick]}
  - {name: queue, match: {path_prefix: /queue}, upstream: origin, filters: [queue]}
  - {name: callout, match: {path_prefix: /callout}, upstream: origin, filters: [callout]}
`, "{{ORIGIN}}", origin, "{{AUTH}}", auth, "{{AB}}", wasmtest.Build(t, "abrouter"), "{{HEADERS}}", wasmtest.Build(t, "headers"),
		"{{TOKEN}}", wasmtest.Build(t, "token"), "{{TEST}}", wasmtest.Build(t, "testfilter"),
		"{{JSON}}", wasmtest.Build(t, "jsonrewrite"))
}

// TestWasmFilters runs the example filters through one node (starting
// one loads every filter): the reload comes last, as it changes the node.
func TestWasmFilters(t *testing.T) {
	e := wasmEdge(t)
	for _, tt := range []struct {
		name string
		fn   func(*testing.T, *edge)
	}{
		{"a filter adds a request header the origin sees", wFilterAddsRequestHeaderSeenByOrigin},
		{"a global filter rewrites response headers", wGlobalFilterRewritesResponseHeaders},
		{"a filter answers locally", wFilterAnswersLocally},
		{"trapping and runaway filters fail only their request", wTrappingAndRunawayFiltersFailOnlyTheirRequest},
		{"filters rewrite bodies", wFiltersRewriteBodies},
		{"filters share data and export metrics", wFiltersShareDataAndExportMetrics},
		{"a filter's root context ticks", wFilterRootContextTicks},
		{"a shared queue tells its owner", wSharedQueueTellsItsOwner},
		{"a filter calls an upstream before the request goes on", wFilterCallsAnUpstream},
		{"a reload swaps filters and refuses one that will not start", wReloadSwapsFiltersAndRefusesOneThatWillNotStart},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, e) })
	}
}

func wFilterAddsRequestHeaderSeenByOrigin(t *testing.T, e *edge) {
	resp, body := get(t, e.URL+"/ab", "X-User-Id", "u1", "X-Outpost-Trace", "1")
	if resp.StatusCode != 200 || body != "from origin" || resp.Header.Get("X-Seen-Variant") != "b" {
		t.Fatalf("%d %q, origin saw X-Variant %q; want b", resp.StatusCode, body, resp.Header.Get("X-Seen-Variant"))
	}
	if tr := resp.Header.Get("X-Outpost-Trace"); !strings.Contains(tr, "wasm=ab request: set x-variant") ||
		!strings.Contains(tr, "wasm=headers response: remove server, set x-frame-options") {
		t.Fatalf("trace %q does not show the filters' edits", tr)
	}
}

func wGlobalFilterRewritesResponseHeaders(t *testing.T, e *edge) {
	resp, _ := get(t, e.URL+"/ab")
	if resp.Header.Get("Server") != "" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("Server %q, X-Frame-Options %q: response headers not rewritten", resp.Header.Get("Server"), resp.Header.Get("X-Frame-Options"))
	}
}

func wFilterAnswersLocally(t *testing.T, e *edge) {
	resp, body := get(t, e.URL+"/token")
	if resp.StatusCode != 403 || body != "forbidden\n" || resp.Header.Get("X-Denied-By") != "token" {
		t.Fatalf("without the token: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	resp, body = get(t, e.URL+"/token", "Authorization", "Bearer s3cret")
	if resp.StatusCode != 200 || body != "from origin" || resp.Header.Get("X-Seen-Authorization") != "" {
		t.Fatalf("with the token: %d %q, origin saw Authorization %q", resp.StatusCode, body, resp.Header.Get("X-Seen-Authorization"))
	}
}

func wTrappingAndRunawayFiltersFailOnlyTheirRequest(t *testing.T, e *edge) {
	for _, name := range []string{"trap", "loop"} {
		start := time.Now()
		resp, body := get(t, e.URL+"/"+name)
		if resp.StatusCode != 500 || !strings.Contains(body, "filter "+name+" failed") {
			t.Fatalf("%s: %d %q, want 500 naming the filter", name, resp.StatusCode, body)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Fatalf("%s: answered after %v", name, took)
		}
		// The node and the other filters go on.
		if resp, _ := get(t, e.URL+"/ab", "X-User-Id", "u1"); resp.StatusCode != 200 || resp.Header.Get("X-Seen-Variant") != "b" {
			t.Fatalf("after %s: %d", name, resp.StatusCode)
		}
	}
	resp, body := get(t, e.URL+"/open")
	if resp.StatusCode != 200 || body != "from origin" {
		t.Fatalf("fail_open filter: %d %q, want the request served without it", resp.StatusCode, body)
	}
}

func wFiltersRewriteBodies(t *testing.T, e *edge) {
	resp, body := get(t, e.URL+"/json")
	if resp.StatusCode != 200 || body != `{"edge":"outpost","id":7}` {
		t.Fatalf("JSON response: %d %q", resp.StatusCode, body)
	}
	resp2, err := http.Post(e.URL+"/upper", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if string(b) != "HELLO" {
		t.Fatalf("the origin got request body %q, want the filter's HELLO", b)
	}
	// A body over body_limit streams through unfiltered.
	big := strings.Repeat("a", 4096)
	resp2, err = http.Post(e.URL+"/upper", "text/plain", strings.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if string(b) != big {
		t.Fatalf("over the limit: origin got %d bytes, changed", len(b))
	}
}

// BenchmarkWasmEmptyFilterHit1K is BenchmarkHit1K on a route that runs
// an empty Proxy-Wasm filter: the difference is the filter's cost on the
// hit path.
func BenchmarkWasmEmptyFilterHit1K(b *testing.B) {
	e := startEdge(&testing.T{}, oneRoute+`    filters: [empty]
wasm:
  filters:
    empty: {file: "{{TEST}}", config: empty, call_timeout: 1s}
`, "{{ORIGIN}}", benchOrigin(b), "{{TEST}}", wasmtest.Build(b, "testfilter"))
	defer e.Shutdown(b.Context())
	c := newRawClient(b, strings.TrimPrefix(e.URL, "http://"), "/obj")
	defer c.conn.Close()
	c.do(b) // fill the cache
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st := c.do(b); st != 200 {
			b.Fatalf("status %d", st)
		}
	}
}

func wFiltersShareDataAndExportMetrics(t *testing.T, e *edge) {
	for i := 1; i <= 3; i++ {
		if resp, _ := get(t, e.URL+"/count"); resp.Header.Get("X-Count") != strconv.Itoa(i) {
			t.Fatalf("request %d: X-Count %q", i, resp.Header.Get("X-Count"))
		}
	}
	if v := metric(t, e, `outpost_wasm_counter{filter="count",name="requests"}`); v != 3 {
		t.Fatalf("the filter's counter on /metrics: %v, want 3", v)
	}
	if v := metric(t, e, `outpost_wasm_failures_total{filter="trap"}`); v < 1 {
		t.Fatalf("failures of the trapping filter on /metrics: %v", v)
	}
}

func wReloadSwapsFiltersAndRefusesOneThatWillNotStart(t *testing.T, e *edge) {
	cfg, _ := os.ReadFile(e.file)
	refusing := strings.Replace(string(cfg), "config: trap}", "config: bad-config}", 1)
	if status, body := postReload(t, e, refusing); status != 422 || !strings.Contains(body, "wasm.filters.trap") ||
		!strings.Contains(body, "refused the configuration") {
		t.Fatalf("filter refusing its configuration: %d %s", status, body)
	}
	if resp, _ := get(t, e.URL+"/token", "Authorization", "Bearer s3cret"); resp.StatusCode != 200 {
		t.Fatalf("after a refused reload: %d", resp.StatusCode)
	}
	if status, body := postReload(t, e, strings.Replace(string(cfg), "s3cret", "n3w", 1)); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if resp, _ := get(t, e.URL+"/token", "Authorization", "Bearer s3cret"); resp.StatusCode != 403 {
		t.Fatalf("old token after reload: %d", resp.StatusCode)
	}
	if resp, _ := get(t, e.URL+"/token", "Authorization", "Bearer n3w"); resp.StatusCode != 200 {
		t.Fatalf("new token after reload: %d", resp.StatusCode)
	}
}

// wFilterRootContextTicks: the tick filter asks for proxy_on_tick every
// 10 ms and counts the ticks in the shared store; requests see the count
// grow.
func wFilterRootContextTicks(t *testing.T, e *edge) {
	ticks := func() int {
		resp, _ := get(t, e.URL+"/tick")
		n, _ := strconv.Atoi(resp.Header.Get("X-Ticks"))
		return n
	}
	first := ticks()
	deadline := time.Now().Add(5 * time.Second)
	for ticks() < first+3 {
		if time.Now().After(deadline) {
			t.Fatalf("X-Ticks stayed near %d for 5s: the root context does not tick", first)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wSharedQueueTellsItsOwner: the queue filter registers a shared queue,
// each request adds its path, the root context dequeues them on
// proxy_on_queue_ready and later responses tell what it got.
func wSharedQueueTellsItsOwner(t *testing.T, e *edge) {
	get(t, e.URL+"/queue/a")
	get(t, e.URL+"/queue/b")
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := get(t, e.URL+"/queue/poll")
		if q := resp.Header.Get("X-Queued"); strings.Contains(q, "/queue/a /queue/b ") {
			return
		} else if time.Now().After(deadline) {
			t.Fatalf("X-Queued %q: the queue's items did not reach its owner", q)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// wFilterCallsAnUpstream: the callout filter pauses the request, calls
// the upstream "auth" of the config (proxy_dispatch_http_call), reads the
// answer's status, header and body in proxy_on_http_call_response and
// tells the origin in a request header; the trace names the call.
func wFilterCallsAnUpstream(t *testing.T, e *edge) {
	resp, body := get(t, e.URL+"/callout", "X-Outpost-Trace", "1")
	if want := "200 GET /check testfilter yes"; resp.StatusCode != 200 || body != "from origin" || resp.Header.Get("X-Seen-Auth-Said") != want {
		t.Fatalf("%d %q, origin saw X-Auth-Said %q, want %q", resp.StatusCode, body, resp.Header.Get("X-Seen-Auth-Said"), want)
	}
	if tr := resp.Header.Get("X-Outpost-Trace"); !strings.Contains(tr, "wasm=callout called auth /check: 200") || strings.Contains(tr, "paused") {
		t.Fatalf("trace %q does not show the call", tr)
	}
}

// TestWasmResponseFiltersBeforeStore: with wasm.response: before_store
// the response callbacks run on the origin's response before the cache
// stores it, so a hit serves what they left and does not run them again
// (the props filter's cache status header is the fetch's, stored); by
// default they run on every response sent, the hit seeing "hit".
func TestWasmResponseFiltersBeforeStore(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "cached")
	}))
	for _, mode := range []string{"before_store", "after_store"} {
		e := startEdge(t, `
upstreams:
  origin: {servers: [{addr: "{{ORIGIN}}"}], first_byte_timeout: 2s}
wasm:
  response: `+mode+`
  filters:
    props: {file: "{{TEST}}", config: props}
routes:
  - {name: all, upstream: origin, cache: {enabled: true}, filters: [props]}
`, "{{ORIGIN}}", origin, "{{TEST}}", wasmtest.Build(t, "testfilter"))
		const status = "X-Prop-Outpost-Cache_status"
		first, _ := get(t, e.URL+"/"+mode)
		hit, body := get(t, e.URL+"/"+mode, "X-Outpost-Trace", "1")
		if body != "cached" || !strings.Contains(hit.Header.Get("X-Outpost-Trace"), "cache=hit") {
			t.Fatalf("%s: second request %q not a hit: %s", mode, body, hit.Header.Get("X-Outpost-Trace"))
		}
		if mode == "before_store" && (hit.Header.Get(status) == "hit" || hit.Header.Get(status) != first.Header.Get(status)) {
			t.Fatalf("before_store: the hit says %q, the fetch %q: the filter ran on the hit", hit.Header.Get(status), first.Header.Get(status))
		}
		if mode == "after_store" && hit.Header.Get(status) != "hit" {
			t.Fatalf("after_store: the hit says %q, want hit", hit.Header.Get(status))
		}
	}
}

// TestWasmFilterEditsResponseTrailers: the origin streams a chunked body
// with a trailer; the filter's proxy_on_response_trailers reads it and
// adds one, which the client receives after the body.
func TestWasmFilterEditsResponseTrailers(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Trailer", "X-Checksum")
		io.WriteString(w, "streamed")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Checksum", "abc")
	}))
	e := startEdge(t, trailerRoutes, "{{ORIGIN}}", origin, "{{PROTO}}", "http1", "{{TEST}}", wasmtest.Build(t, "testfilter"))
	// Go's client shows only trailers the head declared, and Trailer is
	// hop-by-hop: read the bytes.
	conn := dialRaw(t, strings.TrimPrefix(e.URL, "http://"))
	io.WriteString(conn, "GET /f/t HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	raw, _ := io.ReadAll(conn)
	if !strings.HasSuffix(string(raw), "\r\n8\r\nstreamed\r\n0\r\nX-Checksum: abc\r\nx-checksum-seen: abc\r\n\r\n") {
		t.Fatalf("response %q: want the origin's trailer and the filter's", raw)
	}
}
