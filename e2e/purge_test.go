package e2e

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// purgeConfig is an edge caching everything from one origin in memory,
// with HTTP PURGE allowed from loopback. {{EXTRA}} adds top-level keys.
const purgeConfig = `
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    first_byte_timeout: 2s
    connect_timeout: 1s
routes:
  - name: cached
    upstream: origin
    cache: {enabled: true}
purge:
  allow_method_from: [{{ALLOW}}]
{{EXTRA}}
`

const purgeMemory = "storage:\n  memory: {size: 64MiB}\n"

// purgeOrigin serves versioned bodies tagged by path: /t/a+b/x carries
// Surrogate-Key "a b"; /vary/... varies on Accept-Language; /sie/... has
// stale-if-error but no stale-while-revalidate. Bodies are
// "<path> v<version> <language>" with a matching ETag, so revalidations
// get a 304 until the version is bumped.
type purgeOrigin struct {
	mu      sync.Mutex
	version map[string]int
	fetches map[string]int
	midBody func(path string) // called between the two halves of a body
	failing atomic.Bool       // answer 503
}

func purgeNewOrigin(t *testing.T) (*purgeOrigin, string) {
	o := &purgeOrigin{version: map[string]int{}, fetches: map[string]int{}}
	return o, serve(t, o)
}

func (o *purgeOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	o.mu.Lock()
	o.fetches[path]++
	v, mid := o.version[path], o.midBody
	o.mu.Unlock()
	if o.failing.Load() {
		http.Error(w, "origin down", http.StatusServiceUnavailable)
		return
	}
	h := w.Header()
	h.Set("Cache-Control", "max-age=5")
	if strings.HasPrefix(path, "/sie/") {
		h.Set("Surrogate-Control", "max-age=3600, stale-if-error=3600")
	} else {
		h.Set("Surrogate-Control", "max-age=3600, stale-while-revalidate=60, stale-if-error=3600")
	}
	if tags, ok := strings.CutPrefix(path, "/t/"); ok {
		tags, _, _ = strings.Cut(tags, "/")
		h.Set("Surrogate-Key", strings.ReplaceAll(tags, "+", " "))
	}
	if strings.HasPrefix(path, "/vary/") {
		h.Set("Vary", "Accept-Language")
	}
	etag := fmt.Sprintf(`"v%d"`, v)
	h.Set("ETag", etag)
	if r.Header.Get("If-None-Match") == etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := fmt.Sprintf("%s v%d %s", path, v, r.Header.Get("Accept-Language"))
	h.Set("Content-Length", fmt.Sprint(len(body)))
	if mid == nil {
		io.WriteString(w, body)
		return
	}
	io.WriteString(w, body[:len(body)/2])
	w.(http.Flusher).Flush()
	mid(path)
	io.WriteString(w, body[len(body)/2:])
}

func (o *purgeOrigin) bump(paths ...string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, p := range paths {
		o.version[p]++
	}
}

func (o *purgeOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches[path]
}

// purgeWant is the body the origin serves now for path and language.
func (o *purgeOrigin) want(path, lang string) string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("%s v%d %s", path, o.version[path], lang)
}

// purgeStart starts an edge for purge tests; extra is added to the config.
func purgeStart(t *testing.T, origin, extra string) *edge {
	t.Helper()
	return startEdge(t, purgeConfig, "{{ORIGIN}}", origin, "{{ALLOW}}", "127.0.0.1/32", "{{EXTRA}}", extra)
}

// purgeCall posts body to the admin API's /purge with token as its
// Authorization (adminAuth when "") and returns the status and the count
// of objects the answer gives (-1 without one).
func purgeCall(t *testing.T, e *edge, token, body string) (int, int) {
	t.Helper()
	req, err := http.NewRequest("POST", e.Admin+"/purge", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", cmp.Or(token, adminAuth))
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("POST /purge: %v", err)
	}
	defer resp.Body.Close()
	res := struct{ Objects *int }{}
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatalf("POST /purge: answer is not JSON: %v", err)
	}
	if res.Objects == nil {
		return resp.StatusCode, -1
	}
	return resp.StatusCode, *res.Objects
}

// purgeOK purges and fails the test unless the API answers 200.
func purgeOK(t *testing.T, e *edge, body string) int {
	t.Helper()
	status, n := purgeCall(t, e, "", body)
	if status != 200 {
		t.Fatalf("purge %s: status %d", body, status)
	}
	return n
}

// purgePrime fetches each path once (a miss) and checks the second fetch is
// a hit.
func purgePrime(t *testing.T, e *edge, o *purgeOrigin, paths ...string) {
	t.Helper()
	for _, p := range paths {
		get(t, e.URL+p)
		if resp, _ := get(t, e.URL+p); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Fatalf("%s not cached: Cache-Status %q", p, resp.Header.Get("Cache-Status"))
		}
	}
	for _, p := range paths {
		if n := o.count(p); n != 1 {
			t.Fatalf("%s fetched %d times while priming, want 1", p, n)
		}
	}
}

func TestPurgeByURLTakesTheObjectAndAllItsVariants(t *testing.T) {
	for _, soft := range []bool{false, true} {
		t.Run(fmt.Sprint("soft=", soft), func(t *testing.T) {
			o, addr := purgeNewOrigin(t)
			e := purgeStart(t, addr, purgeMemory)
			langs := []string{"en", "fr", "de"}
			for _, l := range langs {
				get(t, e.URL+"/vary/page", "Accept-Language", l)
			}
			purgePrime(t, e, o, "/t/a/other")
			if n := o.count("/vary/page"); n != len(langs) {
				t.Fatalf("origin saw %d fetches of the variants, want %d", n, len(langs))
			}
			o.bump("/vary/page")
			if n := purgeOK(t, e, fmt.Sprintf(`{"urls":["%s/vary/page"],"soft":%v}`, e.URL, soft)); n != 1 {
				t.Errorf("purge answered objects=%d, want 1", n)
			}
			// Hard: the first request gets the new body. Soft: the first
			// may get the old one while the edge refetches.
			for _, l := range langs {
				purgeEventually(t, func() bool {
					_, body := get(t, e.URL+"/vary/page", "Accept-Language", l)
					if !soft && body != o.want("/vary/page", l) {
						t.Fatalf("variant %s after a hard purge: %q, want %q", l, body, o.want("/vary/page", l))
					}
					return body == o.want("/vary/page", l)
				})
			}
			if n := o.count("/vary/page"); n != 2*len(langs) {
				t.Errorf("origin saw %d fetches of the variants, want %d: every variant refetched once", n, 2*len(langs))
			}
			if _, body := get(t, e.URL+"/t/a/other"); body != o.want("/t/a/other", "") || o.count("/t/a/other") != 1 {
				t.Errorf("another URL was purged too")
			}
			if got := metric(t, e, `outpost_purges_total{kind="url"}`); got != 1 {
				t.Errorf("outpost_purges_total{kind=\"url\"} = %v, want 1", got)
			}
		})
	}
}

func TestPurgeBySurrogateKey(t *testing.T) {
	paths := []string{"/t/a/1", "/t/a+b/2", "/t/b/3", "/t/c/4"}
	cases := []struct {
		name    string
		body    string
		purged  []string
		objects int
	}{
		{"one key", `{"keys":["a"]}`, paths[:2], 2},
		{"many keys", `{"keys":["a","b"]}`, paths[:3], 3},
		{"a key tagging nothing", `{"keys":["nothing"]}`, nil, 0},
		{"all", `{"all":true}`, paths, 4},
		{"soft all", `{"all":true,"soft":true}`, paths, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, addr := purgeNewOrigin(t)
			e := purgeStart(t, addr, purgeMemory)
			purgePrime(t, e, o, paths...)
			if n := purgeOK(t, e, tc.body); n != tc.objects {
				t.Errorf("purge answered objects=%d, want %d", n, tc.objects)
			}
			// A purged object is fetched again (softly purged: in the
			// background, after a stale answer); the others are not.
			for _, p := range tc.purged {
				purgeEventually(t, func() bool { get(t, e.URL+p); return o.count(p) == 2 })
			}
			for _, p := range paths {
				get(t, e.URL+p)
				if want := 1 + strings.Count(strings.Join(tc.purged, " "), p); o.count(p) != want {
					t.Errorf("%s fetched %d times, want %d", p, o.count(p), want)
				}
			}
		})
	}
}

func TestSoftPurgeServesStaleWhileRevalidating(t *testing.T) {
	o, addr := purgeNewOrigin(t)
	e := purgeStart(t, addr, purgeMemory)
	const p = "/t/s/page"
	purgePrime(t, e, o, p)
	old := o.want(p, "")
	o.bump(p)
	if n := purgeOK(t, e, `{"keys":["s"],"soft":true}`); n != 1 {
		t.Fatalf("soft purge answered objects=%d, want 1", n)
	}
	if _, body := get(t, e.URL+p); body != old {
		t.Errorf("first request after a soft purge: %q, want the stale body at once", body)
	}
	purgeEventually(t, func() bool { _, b := get(t, e.URL+p); return b == o.want(p, "") })
	if n := o.count(p); n != 2 {
		t.Errorf("origin saw %d fetches, want 2: one background revalidation", n)
	}
}

func TestSoftPurgeServesStaleIfErrorAndHardPurgeDoesNot(t *testing.T) {
	for _, soft := range []bool{true, false} {
		t.Run(fmt.Sprint("soft=", soft), func(t *testing.T) {
			o, addr := purgeNewOrigin(t)
			e := purgeStart(t, addr, purgeMemory)
			const p = "/sie/page"
			purgePrime(t, e, o, p)
			old := o.want(p, "")
			if n := purgeOK(t, e, fmt.Sprintf(`{"urls":["%s%s"],"soft":%v}`, e.URL, p, soft)); n != 1 {
				t.Fatalf("purge answered objects=%d, want 1", n)
			}
			o.failing.Store(true)
			resp, body := get(t, e.URL+p)
			if soft && (resp.StatusCode != 200 || body != old) {
				t.Errorf("origin down after a soft purge: %d %q, want the stale copy", resp.StatusCode, body)
			}
			if !soft && resp.StatusCode == 200 {
				t.Errorf("origin down after a hard purge: 200 %q, want an error: the copy is gone", body)
			}
			if n := o.count(p); n != 2 {
				t.Errorf("origin saw %d fetches, want 2", n)
			}
			o.failing.Store(false)
			o.bump(p)
			purgeEventually(t, func() bool { _, b := get(t, e.URL+p); return b == o.want(p, "") })
		})
	}
}

func TestPurgeIsEffectiveBeforeTheAPIAnswers(t *testing.T) {
	o, addr := purgeNewOrigin(t)
	e := purgeStart(t, addr, purgeMemory)
	const p = "/t/now/page"
	purgePrime(t, e, o, p)
	bodies := []string{`{"urls":["` + e.URL + p + `"]}`, `{"keys":["now"]}`, `{"all":true}`}
	for i := range 30 {
		o.bump(p)
		purgeOK(t, e, bodies[i%len(bodies)])
		if _, body := get(t, e.URL+p); body != o.want(p, "") {
			t.Fatalf("round %d (%s): first request after the purge got %q, want %q", i, bodies[i%len(bodies)], body, o.want(p, ""))
		}
	}
}

func TestPurgeAPINeedsAValidTokenAndLogsWhoAsked(t *testing.T) {
	o, addr := purgeNewOrigin(t)
	tokens := t.TempDir() + "/tokens"
	os.WriteFile(tokens, []byte("ops:s3cret-ops\n# the CI pipeline\nci:s3cret-ci\n\nbare-token\n"), 0o600)
	var log purgeLog
	e := purgeStartLogged(t, &log, purgeConfig+"admin:\n  addr: 127.0.0.1:0\n  token_file: "+tokens+"\n",
		"{{ORIGIN}}", addr, "{{ALLOW}}", "127.0.0.1/32", "{{EXTRA}}", purgeMemory).edge
	const p = "/t/k/page"
	purgePrime(t, e, o, p)
	for _, auth := range []string{"", "Bearer wrong", "Bearer s3cret-ops-and-more", "Bearer ops:s3cret-ops", "Basic s3cret-ops", "s3cret-ops", "Bearer "} {
		if status, _ := purgeCall(t, e, auth, `{"keys":["k"]}`); status != 401 {
			t.Errorf("Authorization %q: status %d, want 401", auth, status)
		}
	}
	if resp, _ := get(t, e.URL+p); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Fatalf("a refused purge purged: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
	for _, tc := range []struct{ token, name string }{{"s3cret-ops", "ops"}, {"s3cret-ci", "ci"}, {"bare-token", "default"}} {
		if status, n := purgeCall(t, e, "Bearer "+tc.token, `{"keys":["k","other"]}`); status != 200 || n > 1 {
			t.Fatalf("token of %s: status %d objects %d", tc.name, status, n)
		}
		if line := log.find(`who=` + tc.name + `@127.0.0.1:`); !strings.Contains(line, `kind=key`) ||
			!strings.Contains(line, `keys="k other"`) || !strings.Contains(line, "took=") || !strings.Contains(line, "objects=") {
			t.Errorf("purge by %s logged as %q", tc.name, line)
		}
	}
	if strings.Contains(log.String(), "s3cret") {
		t.Errorf("a token was logged:\n%s", log.String())
	}
	if got := metric(t, e, `outpost_purges_total{kind="key"}`); got != -1 {
		t.Errorf("/metrics answered without a token")
	}
}

func TestPurgeMethodFromAllowedNetworksOnly(t *testing.T) {
	for _, tc := range []struct {
		allow  string
		status int
	}{{"127.0.0.1/32", 200}, {"10.0.0.0/8", 403}} {
		o, addr := purgeNewOrigin(t)
		e := startEdge(t, purgeConfig, "{{ORIGIN}}", addr, "{{ALLOW}}", tc.allow, "{{EXTRA}}", purgeMemory)
		const p = "/t/m/page"
		purgePrime(t, e, o, p)
		req, _ := http.NewRequest("PURGE", e.URL+p, nil)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("PURGE with allow_method_from %s: %d %q, want %d", tc.allow, resp.StatusCode, body, tc.status)
		}
		after, _ := get(t, e.URL+p)
		if hit := strings.Contains(after.Header.Get("Cache-Status"), "; hit"); hit != (tc.status != 200) {
			t.Errorf("allow_method_from %s: after PURGE Cache-Status %q", tc.allow, after.Header.Get("Cache-Status"))
		}
		if tc.status != 200 {
			continue
		}
		if string(body) != "{\"objects\":1}\n" {
			t.Errorf("PURGE answered %q", body)
		}
		if resp, err = testClient.Do(req); err == nil {
			resp.Body.Close()
		}
		// The object was refetched by the GET above, so it is there again.
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("second PURGE: %v %v", resp.StatusCode, err)
		}
		req, _ = http.NewRequest("PURGE", e.URL+"/never-cached", nil)
		if resp, err = testClient.Do(req); err != nil || resp.StatusCode != 404 {
			t.Errorf("PURGE of an unknown URL: %v %v, want 404", resp.StatusCode, err)
		}
		resp.Body.Close()
	}
}

func TestPurgeAPIRejectsBadInputAndPurgesNothing(t *testing.T) {
	o, addr := purgeNewOrigin(t)
	e := purgeStart(t, addr, purgeMemory)
	const p = "/t/bad/page"
	purgePrime(t, e, o, p)
	many := `{"keys":["bad"` + strings.Repeat(`,"k"`, 10000) + `]}`
	huge := `{"keys":["bad","` + strings.Repeat("k", 5<<20) + `"]}`
	cases := []struct {
		name, body string
		status     int
		objects    int
	}{
		{"malformed JSON", `{"keys": ["bad"`, 400, -1},
		{"not an object", `["bad"]`, 400, -1},
		{"wrong type", `{"keys":"bad"}`, 400, -1},
		{"unknown field", `{"key":["bad"]}`, 400, -1},
		{"two values", `{"keys":["x"]}{"keys":["bad"]}`, 400, -1},
		{"nothing to purge", `{}`, 400, -1},
		{"empty key", `{"keys":["", "bad"]}`, 400, -1},
		{"relative URL", `{"urls":["` + e.URL + p + `", "/t/bad/page"]}`, 400, -1},
		{"not http", `{"urls":["ftp://example.org/x"]}`, 400, -1},
		{"too many keys", many, 413, -1},
		{"body too large", huge, 413, -1},
		{"unknown URL", `{"urls":["` + e.URL + `/never"]}`, 200, 0},
		{"URL of another host", `{"urls":["http://elsewhere.example` + p + `"]}`, 200, 0},
		{"key tagging nothing", `{"keys":["nothing"]}`, 200, 0},
	}
	for _, tc := range cases {
		status, n := purgeCall(t, e, "", tc.body)
		if status != tc.status || n != tc.objects {
			t.Errorf("%s: status %d objects %d, want %d %d", tc.name, status, n, tc.status, tc.objects)
		}
	}
	if resp, _ := get(t, e.URL+p); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") || o.count(p) != 1 {
		t.Errorf("a refused purge purged: Cache-Status %q", resp.Header.Get("Cache-Status"))
	}
}

func TestConcurrentPurgesWhileTheSameObjectsFill(t *testing.T) {
	o, addr := purgeNewOrigin(t)
	e := purgeStart(t, addr, purgeMemory)
	paths := make([]string, 20)
	for i := range paths {
		paths[i] = fmt.Sprintf("/t/hot+h%d/%d", i%3, i)
	}
	bodies := []string{`{"keys":["hot"]}`, `{"keys":["hot"],"soft":true}`, `{"keys":["h0","h1"]}`, `{"all":true}`, `{"urls":["` + e.URL + paths[0] + `"]}`}
	var wg sync.WaitGroup
	var bad atomic.Int64
	deadline := time.Now().Add(10 * time.Second)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 300 && time.Now().Before(deadline); i++ {
				p := paths[(w+i)%len(paths)]
				resp, err := testClient.Get(e.URL + p)
				if err != nil {
					bad.Add(1)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || !strings.HasPrefix(string(b), p+" v") {
					bad.Add(1)
				}
			}
		}()
	}
	for w := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 100 && time.Now().Before(deadline); i++ {
				if status, _ := purgeCall(t, e, "", bodies[(w+i)%len(bodies)]); status != 200 {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if bad.Load() > 0 {
		t.Fatalf("%d requests or purges failed", bad.Load())
	}
	// Consistent afterwards: a purge of the key finds every stored object
	// and the next requests get what the origin serves now.
	o.bump(paths...)
	purgeOK(t, e, `{"keys":["hot"]}`)
	for _, p := range paths {
		if _, body := get(t, e.URL+p); body != o.want(p, "") {
			t.Errorf("%s after the last purge: %q, want %q", p, body, o.want(p, ""))
		}
	}
	if n := purgeOK(t, e, `{"keys":["hot"]}`); n != len(paths) {
		t.Errorf("the index holds %d objects for key hot, want %d", n, len(paths))
	}
}

func TestPurgeRacingAFillIsNotStoredAsFresh(t *testing.T) {
	for _, tc := range []struct{ name, body string }{
		{"key", `{"keys":["race"]}`},
		{"soft key", `{"keys":["race"],"soft":true}`},
		{"url", `{"urls":["{{URL}}"]}`},
		{"soft url", `{"urls":["{{URL}}"],"soft":true}`},
		{"all", `{"all":true}`},
		{"soft all", `{"all":true,"soft":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, addr := purgeNewOrigin(t)
			e := purgeStart(t, addr, purgeMemory)
			const p = "/t/race/page"
			inBody, release := make(chan struct{}), make(chan struct{})
			o.midBody = func(string) {
				close(inBody)
				<-release
			}
			old := o.want(p, "")
			done, firstBytes := make(chan string), make(chan struct{})
			go func() {
				resp, err := testClient.Get(e.URL + p)
				if err != nil {
					close(firstBytes)
					done <- err.Error()
					return
				}
				b := make([]byte, 1)
				n, _ := resp.Body.Read(b) // the fill has begun: the edge relays its bytes
				close(firstBytes)
				rest, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				done <- string(b[:n]) + string(rest)
			}()
			purgeWait(t, inBody)
			purgeWait(t, firstBytes)
			o.mu.Lock()
			o.midBody = nil
			o.mu.Unlock()
			o.bump(p)
			purgeOK(t, e, strings.ReplaceAll(tc.body, "{{URL}}", e.URL+p))
			close(release)
			if body := <-done; body != old {
				t.Fatalf("the request in flight got %q, want %q", body, old)
			}
			resp, body := get(t, e.URL+p)
			if body != o.want(p, "") {
				t.Errorf("after a purge that raced the fill: %q (Cache-Status %q), want %q: the body fetched before the purge was stored",
					body, resp.Header.Get("Cache-Status"), o.want(p, ""))
			}
		})
	}
}

func TestSurrogateKeysSurviveARestartOnDisk(t *testing.T) {
	for _, tier := range []struct{ name, storage string }{
		{"disk", "storage:\n  disk: {path: %s, size: 64MiB}\n"},
		{"memory in front of disk", "storage:\n  memory: {size: 16MiB}\n  disk: {path: %s, size: 64MiB}\n"},
	} {
		t.Run(tier.name, func(t *testing.T) {
			o, addr := purgeNewOrigin(t)
			var log purgeLog
			vars := []string{"{{ORIGIN}}", addr, "{{ALLOW}}", "127.0.0.1/32", "{{EXTRA}}", fmt.Sprintf(tier.storage, t.TempDir())}
			first := purgeStartLogged(t, &log, purgeConfig, vars...)
			// The nodes listen on different ports: a fixed Host keeps the
			// cache keys the same across the restart.
			host := []string{"Host", "index.test"}
			paths := []string{"/t/d/1", "/t/d+e/2", "/t/e/3"}
			for _, p := range paths {
				get(t, first.URL+p, host...)
			}
			first.stop(t)

			second := purgeStartLogged(t, &log, purgeConfig, vars...)
			if resp, _ := get(t, second.URL+paths[2], host...); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
				t.Fatalf("the disk store lost its objects: Cache-Status %q\n%s", resp.Header.Get("Cache-Status"), log.String())
			}
			o.bump(paths...)
			if n := purgeOK(t, second.edge, `{"keys":["d"]}`); n != 2 {
				t.Errorf("purge of key d after a restart: objects=%d, want 2", n)
			}
			for i, p := range paths {
				_, body := get(t, second.URL+p, host...)
				if fresh := body == o.want(p, ""); fresh != (i < 2) {
					t.Errorf("%s after the purge: %q (purged: %v)", p, body, i < 2)
				}
			}
		})
	}
}

// purgeEventually polls cond for up to five seconds.
func purgeEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func purgeWait(t *testing.T, c <-chan struct{}) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatal("the origin was not reached within 10s")
	}
}

// purgeLog collects a node's log lines.
type purgeLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *purgeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *purgeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// find returns the last log line containing s.
func (l *purgeLog) find(s string) string {
	lines := strings.Split(l.String(), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], s) {
			return lines[i]
		}
	}
	return ""
}

// purgeNode is a node whose log is kept and that may be stopped before
// the test ends.
type purgeNode struct {
	*edge
	once sync.Once
}

func (n *purgeNode) stop(t testing.TB) {
	n.once.Do(func() {
		// Idle keep-alive connections can hold a shutdown until its
		// deadline (a server issue); they are not what is tested here.
		testClient.CloseIdleConnections()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := n.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
}

// purgeStartLogged is startEdge with the node's log written to log.
func purgeStartLogged(t testing.TB, log io.Writer, yaml string, vars ...string) *purgeNode {
	t.Helper()
	yaml = strings.NewReplacer(vars...).Replace(yaml)
	if !strings.Contains(yaml, "admin:") {
		yaml += adminBlock(t)
	}
	yaml = "listeners:\n  - addr: 127.0.0.1:0\n" + yaml + "\nlog:\n  access: \"off\"\n"
	file := t.TempDir() + "/outpost.yaml"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	n, err := node.Start(cfg, node.Options{Log: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		t.Fatal(err)
	}
	pn := &purgeNode{edge: &edge{Node: n, URL: "http://" + n.Addrs()[0].String(), Admin: "http://" + n.AdminAddr().String(), file: file}}
	t.Cleanup(func() { pn.stop(t) })
	return pn
}

// BenchmarkPurgeKeysWhileServingHits sends purges of single surrogate
// keys, each tagging one object, through the admin API while four clients
// get cache hits from the same node. It reports purges/s, the hits/s
// served meanwhile and, measured for a second before, without purges.
func BenchmarkPurgeKeysWhileServingHits(b *testing.B) {
	for _, soft := range []bool{false, true} {
		b.Run(fmt.Sprint("soft=", soft), func(b *testing.B) { purgeBenchUnderHits(b, soft) })
	}
}

func purgeBenchUnderHits(b *testing.B, soft bool) {
	o := &purgeOrigin{version: map[string]int{}, fetches: map[string]int{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &http.Server{Handler: o}
	go s.Serve(l)
	defer s.Close()
	e := purgeStartLogged(b, io.Discard, purgeConfig, "{{ORIGIN}}", l.Addr().String(), "{{ALLOW}}", "127.0.0.1/32", "{{EXTRA}}", purgeMemory)
	const objects = 5000
	for i := range objects {
		if resp, err := testClient.Get(fmt.Sprintf("%s/t/k%d/x", e.URL, i)); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
	stop := make(chan struct{})
	var hits atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			url := fmt.Sprintf("%s/t/hot%d/x", e.URL, w)
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := testClient.Get(url)
				if err != nil {
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				hits.Add(1)
			}
		}()
	}
	// The hit rate alone, for comparison.
	time.Sleep(100 * time.Millisecond)
	before := hits.Load()
	time.Sleep(time.Second)
	alone := hits.Load() - before
	touched := 0
	b.ResetTimer()
	start, hitsBefore := time.Now(), hits.Load()
	for i := range b.N {
		body := fmt.Sprintf(`{"keys":["k%d"],"soft":%v}`, i%objects, soft)
		req, _ := http.NewRequest("POST", e.Admin+"/purge", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", adminAuth)
		resp, err := testClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		var res struct{ Objects int }
		json.NewDecoder(resp.Body).Decode(&res)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			b.Fatalf("purge: %d", resp.StatusCode)
		}
		touched += res.Objects
	}
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "purges/s")
	b.ReportMetric(float64(hits.Load()-hitsBefore)/elapsed.Seconds(), "hits/s")
	b.ReportMetric(float64(alone), "hits/s-without-purges")
	b.ReportMetric(float64(touched)/float64(b.N), "objects/purge")
}

func TestPurgeOnANodeWithoutCacheSaysSo(t *testing.T) {
	_, addr := purgeNewOrigin(t)
	e := purgeStart(t, addr, "storage:\n  memory: {size: 0}\n")
	if status, _ := purgeCall(t, e, "", `{"keys":["a"]}`); status != http.StatusNotImplemented {
		t.Errorf("purge without a cache: status %d, want 501", status)
	}
}

// purge.surrogate_key_header names the field that tags objects, and
// purge.strip_surrogate_key: false sends it on to clients (a shield does,
// so that its edges index the keys): both keys did nothing before.
func TestSurrogateKeyFieldAndKeepingIt(t *testing.T) {
	var fetches atomic.Int32
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=3600")
		w.Header().Set("Edge-Tag", "pkg-a all")
		io.WriteString(w, "body")
	}))
	defer origin.Close()
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprint("keep=", keep), func(t *testing.T) {
			fetches.Store(0)
			e := startEdge(t, fmt.Sprintf(`upstreams: {o: {servers: [{addr: "%s"}]}}
routes: [{name: all, upstream: o}]
purge: {surrogate_key_header: Edge-Tag, strip_surrogate_key: %v}
`, strings.TrimPrefix(origin.URL, "http://"), !keep))
			for i := range 2 {
				resp, _ := get(t, e.URL+"/p")
				if got := resp.Header.Get("Edge-Tag"); (got == "pkg-a all") != keep {
					t.Errorf("request %d: Edge-Tag %q with keep=%v", i, got, keep)
				}
			}
			if n := purgeOK(t, e, `{"keys":["pkg-a"]}`); n != 1 {
				t.Fatalf("purge by key answered objects=%d, want 1", n)
			}
			get(t, e.URL+"/p")
			if n := fetches.Load(); n != 2 {
				t.Errorf("origin fetched %d times, want 2 (once, then once after the purge)", n)
			}
		})
	}
}
