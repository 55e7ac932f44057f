package wasm

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/trace"
	"github.com/outpost-edge/outpost/wasm/wasmtest"
)

func load(t testing.TB, example string, spec Spec) *Filter {
	t.Helper()
	code, err := os.ReadFile(wasmtest.Build(t, example))
	if err != nil {
		t.Fatal(err)
	}
	if spec.Name == "" {
		spec.Name = example
	}
	f, err := Load(code, spec, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Close)
	return f
}

func newCtx() *proxy.Ctx {
	req := &httphead.Request{}
	req.SetLine([]byte("GET"), []byte("/a/b?q=1"), []byte("example.org"), []byte("http"))
	req.ProtoMajor, req.ProtoMinor = 1, 1
	c := &proxy.Ctx{Context: context.Background(), Request: req, Trace: &trace.Trace{}, Route: &proxy.Route{Name: "r1"}}
	c.Trace.Reset(time.Now())
	return c
}

// exchange runs a request through ch as the edge App does, without a
// downstream session: request headers, response headers, log.
func exchange(t testing.TB, ch Chain, c *proxy.Ctx, resp *httphead.Response) (bool, error) {
	return exchangeBody(t, ch, c, resp, nil)
}

// exchangeBody is exchange with a response body in memory.
func exchangeBody(t testing.TB, ch Chain, c *proxy.Ctx, resp *httphead.Response, body []byte) (bool, error) {
	answered, err := ch.Request(c)
	if err == nil && !answered {
		err = ch.Response(c, resp)
	}
	if err == nil && !answered {
		_, _, err = ch.ResponseBody(c, resp, body, nil)
	}
	Log(c)
	return answered, err
}

func TestFilterAddsRequestHeader(t *testing.T) {
	ch := Chain{load(t, "abrouter", Spec{Config: "100"})}
	c := newCtx()
	c.Request.Header.AddString("X-User-Id", "u1")
	if _, err := exchange(t, ch, c, &httphead.Response{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if v := c.Request.Header.Get("X-Variant"); v != "b" {
		t.Fatalf("X-Variant %q, want b (100%% in b)", v)
	}
	if got := c.Trace.Find("wasm"); got != "abrouter request: set x-variant" {
		t.Fatalf("trace %q", got)
	}
}

func TestFilterRewritesResponseHeaders(t *testing.T) {
	ch := Chain{load(t, "headers", Spec{Config: "X-Frame-Options: SAMEORIGIN"})}
	resp := &httphead.Response{Status: 200}
	resp.Header.AddString("Server", "origin/1.0")
	resp.Header.AddString("X-Frame-Options", "ALLOW")
	if _, err := exchange(t, ch, newCtx(), resp); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Has("Server") || resp.Header.Get("X-Frame-Options") != "SAMEORIGIN" || resp.Header.Count("X-Frame-Options") != 1 {
		t.Fatalf("response header not rewritten: %s", resp.Header.AppendTo(nil))
	}
}

func TestFilterReadsProperties(t *testing.T) {
	ch := Chain{load(t, "testfilter", Spec{Name: "props", Config: "props"})}
	c := newCtx()
	c.Trace.Add("cache", "hit")
	resp := &httphead.Response{Status: 200}
	if _, err := exchange(t, ch, c, resp); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"x-prop-request-path": "/a/b?q=1", "x-prop-request-method": "GET", "x-prop-route_name": "r1",
		"x-prop-outpost-cache_status": "hit", "x-prop-plugin_name": "props", "x-prop-source-address": "invalid AddrPort",
	}
	for k, v := range want {
		if got := resp.Header.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

func TestFailingFiltersFailTheRequestWith500(t *testing.T) {
	for _, mode := range []string{"trap", "loop", "grow"} {
		t.Run(mode, func(t *testing.T) {
			f := load(t, "testfilter", Spec{Name: mode, Config: mode, CallTimeout: 100 * time.Millisecond, MemoryPages: 512})
			c := newCtx()
			start := time.Now()
			_, err := exchange(t, Chain{f}, c, &httphead.Response{Status: 200})
			var pe *proxy.Error
			if !errors.As(err, &pe) || pe.Status != 500 || pe.Reason != "filter "+mode+" failed" {
				t.Fatalf("error %v, want a 500 naming the filter", err)
			}
			if mode == "loop" && (!errors.Is(err, ErrTimeout) || time.Since(start) > 2*time.Second) {
				t.Fatalf("endless loop: %v after %v", err, time.Since(start))
			}
			if got := c.Trace.Find("wasm"); got != mode+" failed" {
				t.Fatalf("trace %q", got)
			}
			// The failed instance was discarded: the next request gets a
			// healthy one and fails again the same way, not by reusing it.
			if _, err := exchange(t, Chain{f}, newCtx(), &httphead.Response{Status: 200}); !errors.As(err, &pe) {
				t.Fatalf("second request: %v", err)
			}
		})
	}
}

func TestFailOpenFilterIsSkipped(t *testing.T) {
	f := load(t, "testfilter", Spec{Name: "t", Config: "trap", FailOpen: true})
	c := newCtx()
	if _, err := exchange(t, Chain{f}, c, &httphead.Response{Status: 200}); err != nil {
		t.Fatal(err)
	}
	if got := c.Trace.Find("wasm"); !strings.Contains(got, "skipped") {
		t.Fatalf("trace %q", got)
	}
}

func TestLoadRefusesWhatCannotRun(t *testing.T) {
	code, err := os.ReadFile(wasmtest.Build(t, "testfilter"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Load(code, Spec{Name: "b", Config: "bad-config"}, nil); err == nil || !strings.Contains(err.Error(), "refused the configuration") {
		t.Fatalf("refused configuration: %v", err)
	}
	if _, err := Load(code, Spec{Name: "small", MemoryPages: 4}, nil); err == nil {
		t.Fatal("a module that needs more memory than its limit loaded")
	}
	// A module without the ABI version export: the smallest valid module.
	if _, err := Load([]byte("\x00asm\x01\x00\x00\x00"), Spec{Name: "empty"}, nil); err == nil || !strings.Contains(err.Error(), "proxy_abi_version") {
		t.Fatalf("module without ABI version: %v", err)
	}
}

func TestInstancesAreReusedNotMadePerRequest(t *testing.T) {
	f := load(t, "testfilter", Spec{Config: "empty", Instances: 1})
	first := <-f.pool
	f.pool <- first
	for i := 0; i < 20; i++ {
		if _, err := exchange(t, Chain{f}, newCtx(), &httphead.Response{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if got := <-f.pool; got != first {
		t.Fatal("the pooled instance was replaced")
	} else if got.lastID != rootID+20 {
		t.Fatalf("instance served %d contexts, want 20", got.lastID-rootID)
	}
}

// BenchmarkEmptyFilter is the cost an empty filter adds to a request: a
// context created, request and response header callbacks, log, done and
// delete.
func BenchmarkEmptyFilter(b *testing.B) {
	// A second per callback: a guest's garbage collection or a busy
	// machine must not fail a benchmark run.
	ch := Chain{load(b, "testfilter", Spec{Config: "empty", CallTimeout: time.Second})}
	c := newCtx()
	resp := &httphead.Response{Status: 200}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := exchange(b, ch, c, resp); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkExample is the cost of each example filter per request.
func BenchmarkExample(b *testing.B) {
	body := []byte(`{"id": 7, "name": "a JSON object of about a hundred bytes", "tags": ["x", "y", "z"]}`)
	for _, ex := range []struct {
		name, config string
		bodyLimit    int64
	}{{"abrouter", "50", 0}, {"signer", "k3y", 0}, {"token", "secret", 0}, {"headers", "", 0}, {"jsonrewrite", `{"edge": "outpost"}`, 1 << 10}} {
		b.Run(ex.name, func(b *testing.B) {
			ch := Chain{load(b, ex.name, Spec{Config: ex.config, BodyLimit: ex.bodyLimit, CallTimeout: time.Second})}
			c := newCtx()
			c.Request.Header.AddString("Authorization", "Bearer secret")
			resp := &httphead.Response{Status: 200}
			resp.Header.AddString("Content-Type", "application/json")
			b.ReportAllocs()
			for b.Loop() {
				c.Request.Header.Set("Authorization", "Bearer secret")
				resp.Header.Set("Server", "x")
				c.Trace.Reset(time.Now())
				if _, err := exchangeBody(b, ch, c, resp, body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestFilterRewritesJSONResponseBody(t *testing.T) {
	f := load(t, "jsonrewrite", Spec{Config: `{"edge": "outpost", "secret": null}`, BodyLimit: 1 << 10})
	c := newCtx()
	resp := &httphead.Response{Status: 200, ContentLength: 27}
	resp.Header.AddString("Content-Type", "application/json")
	cached := []byte(`{"a": 1, "secret": "hunter"}`)
	ch := Chain{f}
	if _, err := ch.Request(c); err != nil {
		t.Fatal(err)
	}
	if err := ch.Response(c, resp); err != nil {
		t.Fatal(err)
	}
	body, r, err := ch.ResponseBody(c, resp, cached, nil)
	Log(c)
	if err != nil || r != nil {
		t.Fatal(err, r)
	}
	if string(body) != `{"a":1,"edge":"outpost"}` || resp.ContentLength != int64(len(body)) {
		t.Fatalf("body %s, length %d", body, resp.ContentLength)
	}
	if string(cached) != `{"a": 1, "secret": "hunter"}` {
		t.Fatalf("the cached body was written to: %s", cached)
	}
	if got := c.Trace.Find("wasm"); got != "jsonrewrite response: set body" {
		t.Fatalf("trace %q", got)
	}
	// A streamed body over the limit passes unfiltered.
	big := `{"pad": "` + strings.Repeat("x", 2000) + `"}`
	c = newCtx()
	ch.Request(c)
	body, r, err = ch.ResponseBody(c, resp, nil, strings.NewReader(big))
	Log(c)
	rest, _ := io.ReadAll(r)
	if err != nil || body != nil || string(rest) != big {
		t.Fatalf("over the limit: %v %q, streamed %d bytes", err, body, len(rest))
	}
}

func TestFilterSignsRequests(t *testing.T) {
	ch := Chain{load(t, "signer", Spec{Config: "k3y"})}
	c := newCtx()
	if _, err := exchange(t, ch, c, &httphead.Response{Status: 200}); err != nil {
		t.Fatal(err)
	}
	ts := c.Request.Header.Get("X-Signature-Time")
	m := hmac.New(sha256.New, []byte("k3y"))
	m.Write([]byte("GET\n/a/b?q=1\n" + ts))
	if got, want := c.Request.Header.Get("X-Signature"), hex.EncodeToString(m.Sum(nil)); got != want || ts == "" {
		t.Fatalf("signature %q at %q, want %q", got, ts, want)
	}
}

func TestSharedDataIsSharedAcrossInstancesWithCAS(t *testing.T) {
	f := load(t, "testfilter", Spec{Name: "count", Config: "count", Instances: 4})
	shared.Lock()
	delete(shared.m, "count")
	shared.Unlock()
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 25; i++ {
				if _, err := exchange(t, Chain{f}, newCtx(), &httphead.Response{Status: 200}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	resp := &httphead.Response{Status: 200}
	if _, err := exchange(t, Chain{f}, newCtx(), resp); err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Count"); got != "101" {
		t.Fatalf("count %s after 101 requests on 4 goroutines: an update was lost", got)
	}
}

func sharedCount(key string) int {
	shared.Lock()
	defer shared.Unlock()
	n, _ := strconv.Atoi(string(shared.m[key].value))
	return n
}

// TestRootContextTicks: proxy_set_tick_period_milliseconds makes the host
// call proxy_on_tick on the root context every period, until the filter
// is closed.
func TestRootContextTicks(t *testing.T) {
	shared.Lock()
	delete(shared.m, "ticks")
	shared.Unlock()
	f := load(t, "testfilter", Spec{Name: "tick", Config: "tick"})
	deadline := time.Now().Add(5 * time.Second)
	for sharedCount("ticks") < 3 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	resp := &httphead.Response{Status: 200}
	if _, err := exchange(t, Chain{f}, newCtx(), resp); err != nil {
		t.Fatal(err)
	}
	if n, _ := strconv.Atoi(resp.Header.Get("X-Ticks")); n < 3 {
		t.Fatalf("X-Ticks %q: the root context did not tick", resp.Header.Get("X-Ticks"))
	}
	f.Close()
	time.Sleep(30 * time.Millisecond) // a tick running as Close ran ends
	before := sharedCount("ticks")
	time.Sleep(60 * time.Millisecond)
	if after := sharedCount("ticks"); after != before {
		t.Fatalf("ticks went on after Close: %d then %d", before, after)
	}
}

// TestSharedQueueTellsItsOwner: a filter registers a queue, requests
// resolve it and add their path; the owner's root context gets
// proxy_on_queue_ready and dequeues them all.
func TestSharedQueueTellsItsOwner(t *testing.T) {
	shared.Lock()
	delete(shared.m, "queued")
	shared.Unlock()
	f := load(t, "testfilter", Spec{Name: "queue", Config: "queue"})
	for _, path := range []string{"/q1", "/q2", "/q3"} {
		c := newCtx()
		c.Request.SetLine([]byte("GET"), []byte(path), []byte("example.org"), []byte("http"))
		if _, err := exchange(t, Chain{f}, c, &httphead.Response{Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		shared.Lock()
		got := string(shared.m["queued"].value)
		shared.Unlock()
		if got == "/q1 /q2 /q3 " {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dequeued %q, want the three paths in order", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCalloutsReachConfiguredUpstreamsOnly: a call to a name the config
// has no upstream for is refused at dispatch (BadArgument); the filter
// goes on without it.
func TestCalloutsReachConfiguredUpstreamsOnly(t *testing.T) {
	for name, spec := range map[string]Spec{
		"no upstreams":     {Config: "callout"},
		"unknown upstream": {Config: "callout", Upstream: func(string) proxy.Upstream { return nil }},
	} {
		c := newCtx()
		if _, err := exchange(t, Chain{load(t, "testfilter", spec)}, c, &httphead.Response{Status: 200}); err != nil {
			t.Fatal(name, err)
		}
		if got := c.Request.Header.Get("X-Auth-Said"); got != "refused" {
			t.Fatalf("%s: X-Auth-Said %q, want refused", name, got)
		}
	}
}
