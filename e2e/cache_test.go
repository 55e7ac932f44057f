package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testorigin"
)

const cachedRoute = `
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    first_byte_timeout: 2s
    connect_timeout: 1s
    retries: {max: 0}
routes:
  - name: all
    upstream: origin
    cache: {enabled: true}
`

func TestConcurrentMissesMakeOneOriginFetch(t *testing.T) {
	o := testorigin.New(t)
	body := strings.Repeat("p", 200<<10)
	o.SlowFirstByte("/pkg", 300*time.Millisecond, 200, http.Header{"Cache-Control": {"public, max-age=60"}}, body)
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.Addr())
	const clients = 50
	var wg sync.WaitGroup
	errs := make(chan string, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, got := get(t, e.URL+"/pkg")
			if resp.StatusCode != 200 || got != body {
				errs <- resp.Status
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("a client got %s or a wrong body", e)
	}
	if n := o.Hits("/pkg"); n != 1 {
		t.Fatalf("origin saw %d fetches for %d concurrent clients, want 1", n, clients)
	}
	if n := metric(t, e, "outpost_cache_collapsed_total"); n < 1 {
		t.Errorf("collapsed metric = %v", n)
	}
}

func TestStaleIfErrorServesWhileTheOriginIsDown(t *testing.T) {
	o := testorigin.New(t)
	o.Respond("/simple/requests/", 200, http.Header{"Cache-Control": {"max-age=1, stale-if-error=3600"}}, "index v1")
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.Addr())
	if _, b := get(t, e.URL+"/simple/requests/"); b != "index v1" {
		t.Fatalf("first fetch: %q", b)
	}
	o.Kill()
	time.Sleep(1100 * time.Millisecond) // let the object go stale: max-age=1
	for i := 0; i < 3; i++ {
		resp, b := get(t, e.URL+"/simple/requests/")
		if resp.StatusCode != 200 || b != "index v1" {
			t.Fatalf("origin down: %d %q, want the stale copy", resp.StatusCode, b)
		}
		if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "stale") && !strings.Contains(cs, "hit") {
			t.Errorf("Cache-Status %q does not say stale", cs)
		}
	}
	// A URL never cached has nothing to fall back on: a fast 502.
	start := time.Now()
	if resp, _ := get(t, e.URL+"/never-seen"); resp.StatusCode != 502 || time.Since(start) > 3*time.Second {
		t.Fatalf("uncached URL with the origin down: %d after %v", resp.StatusCode, time.Since(start))
	}
}

func TestStaleWhileRevalidateRefreshesOnceInTheBackground(t *testing.T) {
	o := testorigin.New(t)
	o.Respond("/p", 200, http.Header{"Cache-Control": {"max-age=1, stale-while-revalidate=60"}}, "v1")
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.Addr())
	get(t, e.URL+"/p")
	o.Respond("/p", 200, http.Header{"Cache-Control": {"max-age=60"}}, "v2")
	time.Sleep(1100 * time.Millisecond)
	for i := 0; i < 5; i++ {
		if resp, b := get(t, e.URL+"/p"); b != "v1" && b != "v2" || resp.StatusCode != 200 {
			t.Fatalf("got %d %q", resp.StatusCode, b)
		}
	}
	waitFor(t, func() bool { _, b := get(t, e.URL+"/p"); return b == "v2" })
	if n := o.Hits("/p"); n != 2 {
		t.Fatalf("origin saw %d fetches, want 2 (fill and one refresh)", n)
	}
}

func TestRangeAndConditionalRequestsAnsweredFromCache(t *testing.T) {
	o := testorigin.New(t)
	o.Respond("/f", 200, http.Header{"Cache-Control": {"public, max-age=600"}, "Etag": {`"abc"`}}, "0123456789")
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.Addr())
	get(t, e.URL+"/f")
	resp, b := get(t, e.URL+"/f", "Range", "bytes=2-4")
	if resp.StatusCode != 206 || b != "234" || resp.Header.Get("Content-Range") != "bytes 2-4/10" {
		t.Fatalf("range: %d %q %q", resp.StatusCode, b, resp.Header.Get("Content-Range"))
	}
	resp, b = get(t, e.URL+"/f", "Range", "bytes=-3")
	if resp.StatusCode != 206 || b != "789" {
		t.Fatalf("suffix range: %d %q", resp.StatusCode, b)
	}
	resp, _ = get(t, e.URL+"/f", "If-None-Match", `"abc"`)
	if resp.StatusCode != 304 {
		t.Fatalf("conditional: %d", resp.StatusCode)
	}
	if n := o.Hits("/f"); n != 1 {
		t.Fatalf("origin saw %d fetches, want 1", n)
	}
}

func TestOriginResetMidBodyLeavesNothingCached(t *testing.T) {
	o := testorigin.New(t)
	o.BreakMidBody("/broken", 100000, 5000, testorigin.Reset)
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.Addr())
	for i := 0; i < 2; i++ {
		req, _ := http.NewRequest("GET", e.URL+"/broken", nil)
		resp, err := testClient.Do(req)
		if err == nil {
			n, rerr := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if rerr == nil && n == 100000 {
				t.Fatal("a truncated body was delivered as complete")
			}
		}
	}
	if n := o.Hits("/broken"); n != 2 {
		t.Fatalf("origin saw %d fetches: a truncated body was served from cache", n)
	}
}

func TestLargeDiskHitIsServedWhole(t *testing.T) {
	o := testorigin.New(t)
	const size = 3 << 20
	o.Stream("/big", size, http.Header{"Cache-Control": {"public, max-age=600"}})
	dir := t.TempDir()
	e := startEdge(t, cachedRoute+"\nstorage:\n  memory: {size: 0}\n  disk: {path: \""+dir+"\", size: 64MiB}\n", "{{ORIGIN}}", o.Addr())
	for i := 0; i < 3; i++ {
		resp, err := testClient.Get(e.URL + "/big")
		if err != nil {
			t.Fatal(err)
		}
		if err := testorigin.CheckPattern(resp.Body, 0, size); err != nil {
			t.Fatalf("fetch %d: %v", i, err)
		}
		resp.Body.Close()
	}
	if n := o.Hits("/big"); n != 1 {
		t.Fatalf("origin saw %d fetches, want 1", n)
	}
}
