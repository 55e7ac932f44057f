package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testorigin"
)

const threeServers = `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}"}]
    balance: {{BALANCE}}
    connect_timeout: 500ms
    first_byte_timeout: 2s
    retries: {max: 2}
    passive: {consecutive_failures: 3, eject_time: 30s, max_ejected_percent: 50}
routes:
  - name: all
    upstream: origin
    cache: {enabled: false}
`

func fleet(t *testing.T, handle func(o *testorigin.Origin)) []*testorigin.Origin {
	var os []*testorigin.Origin
	for i := 0; i < 3; i++ {
		o := testorigin.New(t)
		handle(o)
		os = append(os, o)
	}
	return os
}

func TestRetriesHideAServerDyingUnderLoad(t *testing.T) {
	os := fleet(t, func(o *testorigin.Origin) { o.Respond("/r", 200, nil, "ok") })
	e := startEdge(t, threeServers, "{{A}}", os[0].Addr(), "{{B}}", os[1].Addr(), "{{C}}", os[2].Addr(), "{{BALANCE}}", "round_robin")
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 5000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := testClient.Get(e.URL + "/r")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	waitFor(t, func() bool { return ok.Load() > 500 })
	os[1].Kill()
	at := ok.Load()
	waitFor(t, func() bool { return ok.Load() > at+2000 })
	close(stop)
	wg.Wait()
	t.Logf("%d ok, %d failed; server B got %d", ok.Load(), failed.Load(), os[1].Hits("/r"))
	if failed.Load() != 0 {
		t.Fatalf("%d client errors while one of three servers died", failed.Load())
	}
}

func TestLatencyAwareBalancerAvoidsASlowServer(t *testing.T) {
	os := fleet(t, func(o *testorigin.Origin) { o.Respond("/r", 200, nil, "ok") })
	os[2].SlowFirstByte("/r", 20*time.Millisecond, 200, nil, "slow") // the others answer in well under 2ms
	e := startEdge(t, threeServers, "{{A}}", os[0].Addr(), "{{B}}", os[1].Addr(), "{{C}}", os[2].Addr(), "{{BALANCE}}", "peak_ewma")
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				resp, err := testClient.Get(e.URL + "/r")
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	slow, total := os[2].Hits("/r"), os[0].Hits("/r")+os[1].Hits("/r")+os[2].Hits("/r")
	share := float64(slow) / float64(total)
	t.Logf("slow server got %d of %d requests (%.1f%%)", slow, total, 100*share)
	if share > 0.10 {
		t.Fatalf("a 10x slower server got %.1f%% of the traffic; want under 10%%", 100*share)
	}
}

func TestAllServersDownAnswers503FastOrServesStale(t *testing.T) {
	os := fleet(t, func(o *testorigin.Origin) { o.Respond("/r", 200, nil, "fresh") })
	// The cached route comes first so that /c/ paths are cached.
	cfg := `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}, {addr: "{{C}}"}]
    connect_timeout: 500ms
    retries: {max: 2}
routes:
  - name: cached
    match: {path_prefix: /c/}
    upstream: origin
    cache: {enabled: true}
  - name: all
    upstream: origin
    cache: {enabled: false}
`
	for _, o := range os {
		o.Handle("/c/r", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Cache-Control", "max-age=1, stale-if-error=600")
			io.WriteString(w, "cached")
		}))
	}
	e := startEdge(t, cfg, "{{A}}", os[0].Addr(), "{{B}}", os[1].Addr(), "{{C}}", os[2].Addr())
	if _, b := get(t, e.URL+"/c/r"); b != "cached" {
		t.Fatalf("warm-up: %q", b)
	}
	for _, o := range os {
		o.Kill()
	}
	time.Sleep(1100 * time.Millisecond) // the cached copy goes stale
	start := time.Now()
	resp, _ := get(t, e.URL+"/r")
	if resp.StatusCode != 503 && resp.StatusCode != 502 || time.Since(start) > 2*time.Second {
		t.Fatalf("all servers down: %d after %v, want a fast 502/503", resp.StatusCode, time.Since(start))
	}
	if resp, b := get(t, e.URL+"/c/r"); resp.StatusCode != 200 || b != "cached" {
		t.Fatalf("all servers down, cached URL: %d %q, want the stale copy", resp.StatusCode, b)
	}
}

func TestRetryWithBodyResendsAKeptBody(t *testing.T) {
	var calls atomic.Int64
	first := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(503) // read the body, then fail
	}))
	second := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, "got "+string(b))
	}))
	cfg := `
upstreams:
  origin:
    servers: [{addr: "{{A}}"}, {addr: "{{B}}"}]
    retries: {max: 1, idempotent_only: false, retry_with_body: {{WITH}}}
routes:
  - name: all
    upstream: origin
    cache: {enabled: false}
`
	for _, with := range []string{"true", "false"} {
		e := startEdge(t, cfg, "{{A}}", first, "{{B}}", second, "{{WITH}}", with)
		okSeen, failed := false, false
		for i := 0; i < 4; i++ { // round robin alternates the servers
			resp, err := testClient.Post(e.URL+"/upload", "text/plain", strings.NewReader("payload"))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && string(b) == "got payload" {
				okSeen = true
			} else if with == "true" {
				t.Fatalf("retry_with_body: %d %q", resp.StatusCode, b)
			} else {
				failed = true
			}
		}
		if with == "false" && (!okSeen || !failed) {
			t.Fatalf("without retry_with_body: ok seen %v, 503 seen %v; want both (a sent body is not resent)", okSeen, failed)
		}
	}
}

func TestBackupUpstreamTakesRequestsTheRetriesCouldNotPlace(t *testing.T) {
	spare := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "spare") }))
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	e := startEdge(t, `
upstreams:
  main:
    servers: [{addr: "{{DEAD}}"}]
    connect_timeout: 500ms
    retries: {max: 0}
    passive: {consecutive_failures: 0}
    failover: {backup_upstream: spare}
  spare:
    servers: [{addr: "{{SPARE}}"}]
routes:
  - name: all
    upstream: main
    cache: {enabled: false}
`, "{{DEAD}}", deadAddr, "{{SPARE}}", spare)
	for i := 0; i < 3; i++ {
		resp, body := get(t, e.URL+"/x", "X-Outpost-Trace", "1")
		if resp.StatusCode != 200 || body != "spare" {
			t.Fatalf("dead primary, no retries left: %d %q, want the spare upstream's answer", resp.StatusCode, body)
		}
		if !strings.Contains(resp.Header.Get("X-Outpost-Trace"), "failover=spare") {
			t.Fatalf("trace %q", resp.Header.Get("X-Outpost-Trace"))
		}
	}
}
