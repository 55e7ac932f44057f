package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testorigin"
)

// foRoute sends everything to the upstream "origin", uncached, so that
// every request reaches a server.
const foRoute = `
routes:
  - name: all
    upstream: origin
    cache: {enabled: false}
`

// foResult is one client request's outcome, safe to collect from
// goroutines (unlike get, which fails the test).
type foResult struct {
	status int
	body   string
	header http.Header
	err    error
}

// foDo sends a GET with header pairs and reads the whole answer.
func foDo(url string, header ...string) foResult {
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		return foResult{err: err}
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		return foResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return foResult{status: resp.StatusCode, body: string(b), header: resp.Header, err: err}
}

// foNamed starts n origins that answer path with their own name ("A",
// "B", ...), so a response body says which server served it.
func foNamed(t *testing.T, n int, paths ...string) []*testorigin.Origin {
	t.Helper()
	var origins []*testorigin.Origin
	for i := 0; i < n; i++ {
		o := testorigin.New(t)
		for _, p := range paths {
			o.Respond(p, 200, nil, string(rune('A'+i)))
		}
		origins = append(origins, o)
	}
	return origins
}

// foVars maps {{A}}, {{B}}... to the origins' addresses for startEdge.
func foVars(origins []*testorigin.Origin, more ...string) []string {
	var v []string
	for i, o := range origins {
		v = append(v, "{{"+string(rune('A'+i))+"}}", o.Addr())
	}
	return append(v, more...)
}

// foMetric returns the value of metric name for one upstream server in the
// node's /metrics, or -1 when there is no such sample.
func foMetric(t *testing.T, e *edge, name, server string) float64 {
	t.Helper()
	_, body := get(t, e.Admin+"/metrics", "Authorization", adminAuth)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, `server="`+server+`"`) {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			return v
		}
	}
	return -1
}

// foUpstream is an upstream's part of GET /stats.
type foUpstream struct {
	Servers map[string]struct {
		Inflight  int64  `json:"in_flight"`
		Healthy   bool   `json:"healthy"`
		Ejected   bool   `json:"ejected"`
		Ejections uint64 `json:"ejections"`
	} `json:"servers"`
	Circuit struct {
		Active      int64  `json:"active"`
		Pending     int64  `json:"pending"`
		CircuitOpen uint64 `json:"circuit_open"`
	} `json:"circuit"`
}

func foStats(t *testing.T, e *edge, upstream string) foUpstream {
	t.Helper()
	_, body := get(t, e.Admin+"/stats", "Authorization", adminAuth)
	var st struct {
		Edge struct {
			Upstreams map[string]foUpstream `json:"upstreams"`
		} `json:"edge"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatalf("/stats: %v\n%s", err, body)
	}
	return st.Edge.Upstreams[upstream]
}

// foSpread sends n requests one after another and counts the answers by
// body; any answer but a 200 fails the test.
func foSpread(t *testing.T, url string, n int, header ...string) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for i := 0; i < n; i++ {
		r := foDo(url, header...)
		if r.err != nil || r.status != 200 {
			t.Fatalf("request %d of %d: %d %q %v", i+1, n, r.status, r.body, r.err)
		}
		seen[r.body]++
	}
	return seen
}

// foLoad runs workers that GET url in a loop until stop is called, which
// returns the successes and the failures (with the first failure).
func foLoad(url string, workers int) (ok *atomic.Int64, stop func() (failed int64, first string)) {
	ok = new(atomic.Int64)
	var failed atomic.Int64
	var firstMu sync.Mutex
	var first string
	done := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Go(func() {
			for i := 0; i < 100000; i++ {
				select {
				case <-done:
					return
				default:
				}
				r := foDo(url)
				if r.err == nil && r.status == 200 {
					ok.Add(1)
					continue
				}
				failed.Add(1)
				firstMu.Lock()
				if first == "" {
					first = fmt.Sprintf("%d %q %v", r.status, r.body, r.err)
				}
				firstMu.Unlock()
			}
		})
	}
	return ok, func() (int64, string) {
		close(done)
		wg.Wait()
		return failed.Load(), first
	}
}

func TestBackupGroupServesOnlyWhileNoPrimaryIsHealthy(t *testing.T) {
	origins := foNamed(t, 3, "/r", "/healthz")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}", backup: true}]
    health: {path: /healthz, interval: 50ms, timeout: 50ms, rise: 1, fall: 2}
    passive: {consecutive_failures: 0}
`+foRoute, foVars(origins)...)
	setHealth := func(o *testorigin.Origin, status int) { o.Respond("/healthz", status, nil, "") }
	healthyIs := func(o *testorigin.Origin, want float64) func() bool {
		return func() bool { return foMetric(t, e, "outpost_upstream_healthy", o.Addr()) == want }
	}
	steps := []struct {
		name       string
		a, b       int // /healthz status of the primaries
		want       string
		servedOnly string // bodies allowed
	}{
		{"both primaries healthy", 200, 200, "A and B", "AB"},
		{"no primary healthy", 503, 503, "the backup", "C"},
		{"one primary back", 200, 503, "A alone", "A"},
		{"both primaries back", 200, 200, "A and B", "AB"},
	}
	for _, s := range steps {
		setHealth(origins[0], s.a)
		setHealth(origins[1], s.b)
		waitFor(t, healthyIs(origins[0], map[bool]float64{true: 1}[s.a == 200]))
		waitFor(t, healthyIs(origins[1], map[bool]float64{true: 1}[s.b == 200]))
		seen := foSpread(t, e.URL+"/r", 30)
		t.Logf("%s: %v", s.name, seen)
		for body := range seen {
			if !strings.Contains(s.servedOnly, body) {
				t.Fatalf("%s: server %s answered; want only %s (%v)", s.name, body, s.want, seen)
			}
		}
		if len(seen) != len(s.servedOnly) {
			t.Fatalf("%s: served by %v, want %s", s.name, seen, s.want)
		}
	}
}

func TestBackupUpstreamTakesOverWhenNoPrimaryServerIsUsable(t *testing.T) {
	origins := foNamed(t, 3, "/r")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}]
    connect_timeout: 500ms
    passive: {consecutive_failures: 1, eject_time: 200ms, max_ejected_percent: 100}
    failover: {backup_upstream: spare}
  spare:
    servers: [{addr: "{{C}}"}]
`+foRoute, foVars(origins)...)
	if seen := foSpread(t, e.URL+"/r", 10); seen["C"] != 0 {
		t.Fatalf("the backup upstream served %d of 10 while the primaries were up", seen["C"])
	}
	origins[0].Kill()
	origins[1].Kill()
	r := foDo(e.URL+"/r", "X-Outpost-Trace", "1")
	if r.status != 200 || r.body != "C" || !strings.Contains(r.header.Get("X-Outpost-Trace"), "failover=spare") {
		t.Fatalf("primaries dead: %d %q, trace %q; want C through failover=spare", r.status, r.body, r.header.Get("X-Outpost-Trace"))
	}
	if seen := foSpread(t, e.URL+"/r", 20); seen["C"] != 20 {
		t.Fatalf("primaries dead: served by %v, want the backup upstream only", seen)
	}
	origins[0].Restart()
	origins[1].Restart()
	waitFor(t, func() bool { r := foDo(e.URL + "/r"); return r.status == 200 && r.body != "C" })
	if seen := foSpread(t, e.URL+"/r", 20); seen["C"] != 0 {
		t.Fatalf("primaries back: served by %v, want the primaries only", seen)
	}
}

func TestStatusFailoverFetchesA404FromTheArchive(t *testing.T) {
	store, archive := testorigin.New(t), testorigin.New(t)
	store.Respond("/new", 200, nil, "store")
	store.Respond("/broken", 500, nil, "store failed")
	archive.Respond("/old", 200, nil, "archive")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{STORE}}"}]
    retries: {max: 0}
    failover: {backup_upstream: archive, on_status: [404]}
  archive:
    servers: [{addr: "{{ARCHIVE}}"}]
`+foRoute, "{{STORE}}", store.Addr(), "{{ARCHIVE}}", archive.Addr())
	tests := []struct {
		path             string
		status           int
		body             string
		storeN, archiveN int64 // hits on each
	}{
		{"/new", 200, "store", 1, 0},
		{"/old", 200, "archive", 1, 1},
		{"/nowhere", 404, "404 page not found\n", 1, 1},
		{"/broken", 500, "store failed", 1, 0},
	}
	for _, tt := range tests {
		r := foDo(e.URL+tt.path, "X-Outpost-Trace", "1")
		trace := r.header.Get("X-Outpost-Trace")
		if r.status != tt.status || r.body != tt.body {
			t.Errorf("%s: %d %q, want %d %q (trace %s)", tt.path, r.status, r.body, tt.status, tt.body, trace)
		}
		if s, a := store.Hits(tt.path), archive.Hits(tt.path); s != tt.storeN || a != tt.archiveN {
			t.Errorf("%s: store saw %d, archive %d; want %d and %d", tt.path, s, a, tt.storeN, tt.archiveN)
		}
		if went := strings.Contains(trace, "failover=archive"); went != (tt.archiveN > 0) {
			t.Errorf("%s: trace %q; failover expected: %v", tt.path, trace, tt.archiveN > 0)
		}
	}
}

func TestCircuitBreakerAnswersFast503OverTheLimit(t *testing.T) {
	const delay = 600 * time.Millisecond
	o := testorigin.New(t)
	o.SlowFirstByte("/slow", delay, 200, nil, "slow")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}]
    circuit: {max_concurrent: 2, max_pending: 1}
`+foRoute, "{{A}}", o.Addr())
	results := make(chan foResult, 3)
	for i := 0; i < 3; i++ {
		go func() { results <- foDo(e.URL + "/slow") }()
	}
	// Two at the origin, one waiting for a slot: the breaker is full.
	waitFor(t, func() bool {
		st := foStats(t, e, "origin")
		return st.Circuit.Active == 2 && st.Circuit.Pending == 1 && o.Hits("/slow") == 2
	})
	start := time.Now()
	r := foDo(e.URL + "/slow")
	took := time.Since(start)
	t.Logf("over the limit: %d %q after %v (origin delay %v)", r.status, r.body, took, delay)
	if r.status != 503 || !strings.Contains(r.body, "overloaded") {
		t.Fatalf("over the limit: %d %q, want 503 with a reason", r.status, r.body)
	}
	if took > delay/6 {
		t.Fatalf("over the limit: the 503 took %v, want well under the origin's %v", took, delay)
	}
	for i := 0; i < 3; i++ {
		if r := <-results; r.status != 200 {
			t.Errorf("admitted request: %d %q %v", r.status, r.body, r.err)
		}
	}
	if n := o.Hits("/slow"); n != 3 {
		t.Errorf("origin saw %d requests, want 3 (the refused one never reaches it)", n)
	}
	if st := foStats(t, e, "origin"); st.Circuit.CircuitOpen != 1 {
		t.Errorf("circuit open counted %d times, want 1", st.Circuit.CircuitOpen)
	}
}

func TestActiveHealthChecksTakeAServerOutAndBringItBack(t *testing.T) {
	origins := foNamed(t, 2, "/r", "/healthz")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}]
    health: {path: /healthz, expect_status: "200-299", interval: 50ms, timeout: 50ms, rise: 3, fall: 2}
    passive: {consecutive_failures: 0}
`+foRoute, foVars(origins)...)
	a := origins[0]
	healthy := func() float64 { return foMetric(t, e, "outpost_upstream_healthy", a.Addr()) }
	for _, step := range []struct {
		status    int
		healthy   float64
		threshold int64
	}{{500, 0, 2}, {200, 1, 3}, {302, 0, 2}, {204, 1, 3}} {
		before := a.Hits("/healthz")
		a.Respond("/healthz", step.status, nil, "")
		waitFor(t, func() bool { return healthy() == step.healthy })
		if probes := a.Hits("/healthz") - before; probes < step.threshold {
			t.Fatalf("/healthz %d: verdict changed after %d probes, want at least %d", step.status, probes, step.threshold)
		}
		seen := foSpread(t, e.URL+"/r", 20)
		t.Logf("/healthz answers %d: healthy=%v, served %v", step.status, step.healthy, seen)
		if step.healthy == 0 && seen["A"] != 0 || step.healthy == 1 && seen["A"] == 0 {
			t.Fatalf("/healthz answers %d: A served %d of 20", step.status, seen["A"])
		}
	}
}

func TestPassiveEjectionNeverExceedsMaxEjectedPercent(t *testing.T) {
	origins := foNamed(t, 4, "/r")
	for _, o := range origins[:3] {
		o.Respond("/r", 500, nil, "broken")
	}
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}"}, {addr: "{{D}}"}]
    retries: {max: 0}
    passive: {consecutive_failures: 3, eject_time: 30s, max_ejected_percent: 50}
`+foRoute, foVars(origins)...)
	ejected := func() (servers int, total float64) {
		for _, o := range origins {
			if foMetric(t, e, "outpost_upstream_healthy", o.Addr()) == 0 {
				servers++
			}
			total += foMetric(t, e, "outpost_upstream_ejections_total", o.Addr())
		}
		return servers, total
	}
	for round := 0; round < 8; round++ {
		for i := 0; i < 10; i++ {
			if r := foDo(e.URL + "/r"); r.err != nil || r.status != 200 && r.status != 500 {
				t.Fatalf("request: %d %v", r.status, r.err)
			}
		}
		if n, _ := ejected(); n > 2 {
			t.Fatalf("round %d: %d of 4 servers out, max_ejected_percent is 50", round, n)
		}
	}
	n, total := ejected()
	t.Logf("%d servers ejected, %v ejections", n, total)
	if n != 2 || total != 2 {
		t.Fatalf("%d servers ejected (%v ejections), want 2: three fail but only half may go", n, total)
	}
	// The failing server that stays in keeps getting its share, and
	// errors are counted against each failing server.
	before := [4]int64{}
	for i, o := range origins {
		before[i] = o.Hits("/r")
	}
	for i := 0; i < 20; i++ {
		foDo(e.URL + "/r")
	}
	in := 0
	for i, o := range origins[:3] {
		if o.Hits("/r") > before[i] {
			in++
		}
		if errs := foMetric(t, e, "outpost_upstream_errors_total", o.Addr()); errs < 3 {
			t.Errorf("server %c: %v errors counted, want at least 3", 'A'+i, errs)
		}
	}
	if in != 1 || origins[3].Hits("/r") == before[3] {
		t.Fatalf("after ejections %d failing servers and D=%v still served, want 1 and true", in, origins[3].Hits("/r") > before[3])
	}
}

// foCookie returns the name=value part of the first Set-Cookie, or "".
func foCookie(h http.Header) string {
	c, _, _ := strings.Cut(h.Get("Set-Cookie"), ";")
	return c
}

func TestStickyCookiePinsAClientUntilItsServerDies(t *testing.T) {
	origins := foNamed(t, 3, "/s")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}"}]
    sticky_cookie: srv
    connect_timeout: 500ms
    health: {tcp: true, interval: 50ms, timeout: 50ms, rise: 1, fall: 1}
`+foRoute, foVars(origins)...)
	first := foDo(e.URL + "/s")
	cookie := foCookie(first.header)
	if first.status != 200 || !strings.HasPrefix(cookie, "srv=") {
		t.Fatalf("first request: %d, Set-Cookie %q", first.status, first.header.Get("Set-Cookie"))
	}
	pinned := first.body
	for i := 0; i < 12; i++ {
		r := foDo(e.URL+"/s", "Cookie", "theme=dark; "+cookie)
		if r.body != pinned || r.header.Get("Set-Cookie") != "" {
			t.Fatalf("request %d with the cookie: served by %q (Set-Cookie %q), want %s and no new cookie",
				i, r.body, r.header.Get("Set-Cookie"), pinned)
		}
	}
	if seen := foSpread(t, e.URL+"/s", 6); len(seen) != 3 {
		t.Fatalf("without the cookie: served by %v, want round robin over all three", seen)
	}

	dead := origins[pinned[0]-'A']
	dead.Kill()
	moved := foDo(e.URL+"/s", "Cookie", cookie, "X-Outpost-Trace", "1")
	newCookie := foCookie(moved.header)
	t.Logf("pinned to %s, which died: served by %s, trace %s", pinned, moved.body, moved.header.Get("X-Outpost-Trace"))
	if moved.status != 200 || moved.body == pinned || newCookie == "" || newCookie == cookie {
		t.Fatalf("pinned server dead: %d %q, Set-Cookie %q; want another server and a new cookie", moved.status, moved.body, newCookie)
	}
	for i := 0; i < 6; i++ {
		if r := foDo(e.URL+"/s", "Cookie", newCookie); r.body != moved.body {
			t.Fatalf("with the new cookie: served by %q, want %s", r.body, moved.body)
		}
	}
	// Once health checks see it down, the old cookie's server is not
	// even tried.
	waitFor(t, func() bool { return foMetric(t, e, "outpost_upstream_check_failed", dead.Addr()) == 1 })
	r := foDo(e.URL+"/s", "Cookie", cookie, "X-Outpost-Trace", "1")
	trace := r.header.Get("X-Outpost-Trace")
	if r.status != 200 || !strings.Contains(trace, "sticky=server unusable") || strings.Contains(trace, "attempt=2") || foCookie(r.header) == "" {
		t.Fatalf("old cookie, server down: %d, Set-Cookie %q, trace %s; want one attempt elsewhere and a new cookie",
			r.status, r.header.Get("Set-Cookie"), trace)
	}
}

func TestConsistentHashingAndPerServerMetrics(t *testing.T) {
	var paths []string
	for i := 0; i < 40; i++ {
		paths = append(paths, fmt.Sprintf("/h/%d", i))
	}
	origins := foNamed(t, 3, paths...)
	for _, o := range origins {
		o.Respond("/h/fail", 502, nil, "bad gateway")
	}
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}"}]
    balance: hash
    retries: {max: 0}
    passive: {consecutive_failures: 0}
`+foRoute, foVars(origins)...)
	owner := map[string]string{}
	perServer := map[string]int{}
	for round := 0; round < 3; round++ {
		for _, p := range paths {
			r := foDo(e.URL + p)
			if r.status != 200 {
				t.Fatalf("%s: %d %q", p, r.status, r.body)
			}
			if prev, ok := owner[p]; ok && prev != r.body {
				t.Fatalf("%s went to %s, then to %s", p, prev, r.body)
			}
			owner[p] = r.body
			perServer[r.body]++
		}
	}
	t.Logf("requests per server over 40 URLs x 3: %v", perServer)
	if len(perServer) != 3 {
		t.Fatalf("40 URLs hashed onto %v, want all three servers used", perServer)
	}
	for i := 0; i < 3; i++ {
		foDo(e.URL + "/h/fail") // always the same server, which fails
	}
	failOwner := -1
	for i, o := range origins {
		if o.Hits("/h/fail") > 0 {
			failOwner = i
		}
	}
	for i, o := range origins {
		var hits int64
		for _, p := range append(paths, "/h/fail") {
			hits += o.Hits(p)
		}
		reqs := foMetric(t, e, "outpost_upstream_requests_total", o.Addr())
		errs := foMetric(t, e, "outpost_upstream_errors_total", o.Addr())
		lat := foMetric(t, e, "outpost_upstream_duration_seconds_count", o.Addr())
		health := foMetric(t, e, "outpost_upstream_healthy", o.Addr())
		ejections := foMetric(t, e, "outpost_upstream_ejections_total", o.Addr())
		t.Logf("server %c: hits %d, requests %v, errors %v, latency samples %v, healthy %v, ejections %v",
			'A'+i, hits, reqs, errs, lat, health, ejections)
		wantErrs := 0.0
		if i == failOwner {
			wantErrs = 3
		}
		if reqs != float64(hits) || lat != float64(hits) || errs != wantErrs || health != 1 || ejections != 0 {
			t.Errorf("server %c metrics: requests %v, latency samples %v (hits %d), errors %v (want %v), healthy %v, ejections %v",
				'A'+i, reqs, lat, hits, errs, wantErrs, health, ejections)
		}
	}
}

func TestTraceShowsEachAttemptAndWhyItWasRetried(t *testing.T) {
	origins := foNamed(t, 3, "/r")
	origins[0].Respond("/r", 503, nil, "busy")
	origins[1].Kill()
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}"}]
    retries: {max: 2, budget_ratio: 0}
    connect_timeout: 500ms
    passive: {consecutive_failures: 0}
`+foRoute, foVars(origins)...)
	// What the trace must say after trying each server.
	after := map[string][]string{
		origins[0].Addr(): {"retry-why=status", "retry=503"},
		origins[1].Addr(): {"retry-why=connect failed", "retry=error"},
		origins[2].Addr(): nil,
	}
	longest := 0
	for i := 0; i < 10; i++ {
		r := foDo(e.URL+"/r", "X-Outpost-Trace", "1")
		trace := r.header.Get("X-Outpost-Trace")
		if r.status != 200 || r.body != "C" {
			t.Fatalf("request %d: %d %q, want C's answer (trace %s)", i, r.status, r.body, trace)
		}
		var got, want []string
		tried := map[string]bool{}
		for _, ev := range strings.Split(trace, "; ") {
			k, v, _ := strings.Cut(ev, "=")
			switch {
			case k == "upstream":
				if tried[v] {
					t.Fatalf("server %s tried twice: %s", v, trace)
				}
				tried[v] = true
				want = append(want, fmt.Sprintf("attempt=%d", len(tried)), ev)
				want = append(want, after[v]...)
				fallthrough
			case k == "attempt" || strings.HasPrefix(k, "retry"):
				got = append(got, ev)
			}
		}
		if strings.Join(got, "; ") != strings.Join(want, "; ") {
			t.Fatalf("trace %s\n got %s\nwant %s", trace, strings.Join(got, "; "), strings.Join(want, "; "))
		}
		if len(tried) > longest {
			longest = len(tried)
			t.Logf("%s", trace)
		}
	}
	if longest != 3 {
		t.Errorf("no request tried all three servers")
	}
}

func TestReloadChangesServersWithoutDroppingInFlightRequests(t *testing.T) {
	origins := foNamed(t, 4, "/r")
	for i, o := range origins {
		o.SlowFirstByte("/r", 20*time.Millisecond, 200, nil, string(rune('A'+i)))
	}
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}]
`+foRoute, foVars(origins)...)
	file, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(file)
	serversOf := func(i, j int) string {
		return `servers: [{addr: "` + origins[i].Addr() + `"}, {addr: "` + origins[j].Addr() + `"}]`
	}
	ok, stop := foLoad(e.URL+"/r", 8)
	inflight := func(o *testorigin.Origin) func() bool {
		return func() bool { return foStats(t, e, "origin").Servers[o.Addr()].Inflight > 0 }
	}
	steps := []struct {
		gone int    // the server that leaves
		to   [2]int // the servers after the reload
	}{
		{0, [2]int{1, 2}}, // A goes, C comes
		{1, [2]int{2, 3}}, // B goes, D comes
		{2, [2]int{0, 3}}, // C goes, A comes back
	}
	current := serversOf(0, 1)
	var goneHits [4]int64
	for _, s := range steps {
		gone := origins[s.gone]
		// Reload while the server about to go has requests in flight.
		waitFor(t, inflight(gone))
		next := serversOf(s.to[0], s.to[1])
		cfg = strings.Replace(cfg, current, next, 1)
		current = next
		if status, body := postReload(t, e, cfg); status != 200 {
			t.Fatalf("reload to %v: %d %s", s.to, status, body)
		}
		goneHits[s.gone] = gone.Hits("/r")
		at := ok.Load()
		waitFor(t, func() bool { return ok.Load() > at+100 })
	}
	failed, first := stop()
	t.Logf("%d ok, %d failed; hits A %d B %d C %d D %d", ok.Load(), failed,
		origins[0].Hits("/r"), origins[1].Hits("/r"), origins[2].Hits("/r"), origins[3].Hits("/r"))
	if failed != 0 {
		t.Fatalf("%d client errors across reloads; first: %s", failed, first)
	}
	// Requests that chose a server just before the reload may still
	// arrive; at most one per worker.
	for _, i := range []int{1, 2} {
		if late := origins[i].Hits("/r") - goneHits[i]; late > 8 {
			t.Errorf("server %c got %d requests after it was removed", 'A'+i, late)
		}
	}
}

func TestReloadWithDNSDiscoveryFollowsTheNewNames(t *testing.T) {
	origins := foNamed(t, 2, "/r")
	named := func(o *testorigin.Origin) string {
		return "localhost:" + o.Addr()[strings.LastIndexByte(o.Addr(), ':')+1:]
	}
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{NAME}}"}]
    dns: {refresh: 50ms}
`+foRoute, "{{NAME}}", named(origins[0]))
	file, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	// Resolved: the servers are the name's addresses (127.0.0.1, maybe
	// ::1 too), not the name itself nor another name's.
	resolvedTo := func(o *testorigin.Origin) func() bool {
		return func() bool {
			servers := foStats(t, e, "origin").Servers
			for addr := range servers {
				if !strings.HasSuffix(addr, o.Addr()[strings.LastIndexByte(o.Addr(), ':'):]) || strings.HasPrefix(addr, "localhost") {
					return false
				}
			}
			_, ok := servers[o.Addr()]
			return ok
		}
	}
	waitFor(t, resolvedTo(origins[0]))
	if status, body := postReload(t, e, strings.Replace(string(file), named(origins[0]), named(origins[1]), 1)); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	waitFor(t, resolvedTo(origins[1]))
	if seen := foSpread(t, e.URL+"/r", 20); seen["B"] != 20 {
		t.Fatalf("after the reload to B's name: served by %v", seen)
	}
}

func TestReloadThatReplacesConnectionsDropsNoRequest(t *testing.T) {
	origins := foNamed(t, 2, "/r")
	for i, o := range origins {
		o.SlowFirstByte("/r", 5*time.Millisecond, 200, nil, string(rune('A'+i)))
	}
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}]
    connect_timeout: 1s
`+foRoute, foVars(origins)...)
	file, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	ok, stop := foLoad(e.URL+"/r", 8)
	// A new connect timeout needs new connections: each reload builds a
	// new pool while requests are in flight on the old one.
	timeouts := []string{"connect_timeout: 1s", "connect_timeout: 2s"}
	for i := 1; i <= 10; i++ {
		cfg := strings.Replace(string(file), timeouts[0], timeouts[i%2], 1)
		if status, body := postReload(t, e, cfg); status != 200 {
			t.Fatalf("reload %d: %d %s", i, status, body)
		}
		at := ok.Load()
		waitFor(t, func() bool { return ok.Load() > at+20 })
	}
	failed, first := stop()
	t.Logf("%d ok, %d failed", ok.Load(), failed)
	if failed != 0 {
		t.Fatalf("%d client errors across reloads that replace the connection pool; first: %s", failed, first)
	}
}
