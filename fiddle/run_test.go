package fiddle

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
)

// packageIndex is the package-index example's config.
func packageIndex(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("../examples/package-index.yaml")
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// indexPage is an index page as the example's origin sends it.
var indexPage = Rule{Path: "/simple/x/", Headers: map[string]string{
	"Surrogate-Control": "max-age=60, stale-while-revalidate=300, stale-if-error=86400",
	"Surrogate-Key":     "project/x"}, Body: "<html>x</html>"}

func runOK(t *testing.T, req *Request) []Result {
	t.Helper()
	out := Run(context.Background(), req)
	if len(out.Errors) > 0 {
		t.Fatalf("config errors: %+v", out.Errors)
	}
	if len(out.Results) != len(req.Requests) {
		t.Fatalf("%d results for %d requests", len(out.Results), len(req.Requests))
	}
	for i, r := range out.Results {
		if r.Error != "" {
			t.Fatalf("step %d: %s", i, r.Error)
		}
		for _, a := range r.Assertions {
			if !a.OK {
				t.Errorf("step %d: assertion %s failed %s\nevents: %+v", i, a.Expr, a.Error, r.Events)
			}
		}
	}
	return out.Results
}

// has reports whether a result has an event with this phase and decision
// whose reason contains reason.
func has(r Result, phase, decision, reason string) bool {
	for _, e := range r.Events {
		if e.Phase == phase && e.Decision == decision && strings.Contains(e.Reason, reason) {
			return true
		}
	}
	return false
}

func TestRoute(t *testing.T) {
	res := runOK(t, &Request{Config: packageIndex(t), Origins: map[string][]Rule{"app": {indexPage}},
		Requests: []Step{
			{URL: "http://index.test/simple/x/"},
			{URL: "http://index.test/_edge/health"},
			{URL: "http://index.test/nowhere"},
			{Method: "DELETE", URL: "http://index.test/packages/a.whl"},
		}})
	if !has(res[0], "route", "index", "routes[1]") || !has(res[0], "route", "index", "path_prefix /simple/") {
		t.Errorf("index indexPage: %+v", res[0].Events)
	}
	if !has(res[1], "route", "health", "path_exact /_edge/health") || res[1].Response.Body != "ok\n" {
		t.Errorf("health: %+v %q", res[1].Events, res[1].Response.Body)
	}
	for _, r := range res[2:] {
		if r.Response.Status != 404 || has(r, "route", "", "") {
			t.Errorf("%s %s: status %d, events %+v", r.Request.Method, r.Request.URL, r.Response.Status, r.Events)
		}
	}
}

const guarded = `
upstreams:
  app: {servers: [{addr: "127.0.0.1:8081"}]}
routes:
  - {name: all, upstream: app}
protection:
  rules:
    - {name: office, ips: [192.0.2.0/24], action: allow}
    - {name: no-curl, user_agents: [curl], action: deny}
`

func TestProtection(t *testing.T) {
	res := runOK(t, &Request{Config: guarded, Origins: map[string][]Rule{"app": {{Body: "hello"}}},
		Requests: []Step{
			{URL: "http://a.test/", ClientIP: "198.51.100.7", Headers: map[string]string{"User-Agent": "curl"},
				Assert: []string{"response.status == 403", "origin_fetches.size() == 0"}},
			{URL: "http://a.test/", ClientIP: "192.0.2.7", Headers: map[string]string{"User-Agent": "curl"},
				Assert: []string{"response.status == 200", `response.body == "hello"`}},
			{URL: "http://a.test/", ClientIP: "198.51.100.7", Headers: map[string]string{"User-Agent": "Mozilla/5.0"},
				Assert: []string{"response.status == 200"}},
		}})
	if !has(res[0], "protection", "deny", "rule no-curl") || !has(res[0], "protection", "refused", "no-curl") {
		t.Errorf("curl from outside: %+v", res[0].Events)
	}
	if !has(res[1], "protection", "allow", "rule office") {
		t.Errorf("curl from the office: %+v", res[1].Events)
	}
}

func TestCache(t *testing.T) {
	u := "http://index.test/simple/x/"
	res := runOK(t, &Request{Config: packageIndex(t), Origins: map[string][]Rule{"app": {indexPage}},
		Requests: []Step{
			{URL: u, Assert: []string{`events.exists(e, e.phase == "cache" && e.decision == "miss")`, "origin_fetches.size() == 1"}},
			{URL: u, Assert: []string{`events.exists(e, e.phase == "cache" && e.decision == "hit")`, "origin_fetches.size() == 0"}},
			// Past max-age, within stale-while-revalidate: served stale,
			// refreshed in the background.
			{URL: u, At: "+2m", Assert: []string{`events.exists(e, e.phase == "cache" && e.decision == "stale-updating")`, "origin_fetches.size() == 1"}},
			{URL: u, At: "+2m", Assert: []string{`events.exists(e, e.phase == "cache" && e.decision == "hit")`}},
			{Purge: &Purge{Keys: []string{"project/x"}, Soft: true}, At: "+3m", Assert: []string{"purged == 1"}},
			{URL: u, At: "+3m"},
			{Purge: &Purge{URLs: []string{u}}, At: "+3m"},
			{URL: u, At: "+3m", Assert: []string{`events.exists(e, e.phase == "cache" && e.decision == "miss")`}},
		}})
	if !has(res[0], "cache", "ttl", "60s from targeted max-age") || !has(res[0], "cache", "stored", "surrogate keys: project/x") {
		t.Errorf("miss: %+v", res[0].Events)
	}
	if !has(res[0], "cache", "key", "http://index.test/simple/x/") {
		t.Errorf("no cache key: %+v", res[0].Events)
	}
	if res[1].Response.Headers["Cache-Status"] == "" || res[2].At != "+2m0s" {
		t.Errorf("hit: %+v at %s", res[1].Response.Headers, res[2].At)
	}
	if has(res[5], "cache", "hit", "") {
		t.Errorf("a hit after a soft purge: %+v", res[5].Events)
	}
}

func TestUpstreamFailover(t *testing.T) {
	res := runOK(t, &Request{Config: packageIndex(t), Origins: map[string][]Rule{
		"files":   {{Path: "/packages/*", Status: 404}},
		"archive": {{Path: "/packages/*", Body: "wheel", Headers: map[string]string{"Cache-Control": "max-age=31536000, immutable"}}},
	}, Requests: []Step{{URL: "http://index.test/packages/a-1.0.whl",
		Assert: []string{"response.status == 200", "origin_fetches.size() == 2",
			`origin_fetches[0].upstream == "files" && origin_fetches[1].upstream == "archive"`}}}})
	if !has(res[0], "upstream", "failover", "archive") || !has(res[0], "upstream", "server", "127.0.0.1:8091") ||
		!has(res[0], "upstream", "server", "127.0.0.1:8092") {
		t.Errorf("failover: %+v", res[0].Events)
	}
}

func TestRetries(t *testing.T) {
	api := Rule{Path: "/pypi/*", Body: "{}"}
	res := runOK(t, &Request{Config: packageIndex(t), Origins: map[string][]Rule{
		"app": {{Server: "127.0.0.1:8081", Fail: "refuse"}, api}},
		Requests: []Step{
			{URL: "http://index.test/pypi/x/json", Assert: []string{"response.status == 200"}},
			{URL: "http://index.test/pypi/y/json", Assert: []string{"response.status == 200"}},
			{URL: "http://index.test/pypi/z/json", Origins: map[string][]Rule{"app": {{Fail: "refuse"}}},
				Assert: []string{"response.status == 502", "origin_fetches.size() == 0"}},
			// A reset half way through the body comes after the head:
			// nothing to retry, the client's response is cut.
			{URL: "http://index.test/pypi/w/json", Origins: map[string][]Rule{"app": {{Fail: "reset", Body: "0123456789"}}},
				Assert: []string{"origin_fetches.size() == 1", "response.body_bytes < 10"}},
		}})
	// Round robin sends one of the first two requests to the refusing
	// server first: that one is retried on the other.
	if !has(res[0], "retry", "retry", "") && !has(res[1], "retry", "retry", "") {
		t.Errorf("refused, no retry: %+v\n%+v", res[0].Events, res[1].Events)
	}
	if !has(res[2], "retry", "attempt failed", "error") || !has(res[2], "retry", "retry", "connect failed") ||
		!has(res[2], "upstream", "server", "127.0.0.1:8081") || !has(res[2], "upstream", "server", "127.0.0.1:8082") {
		t.Errorf("every server refusing: %+v", res[2].Events)
	}
	if !has(res[3], "upstream", "body aborted", "") || has(res[3], "retry", "retry", "") {
		t.Errorf("reset mid-body: %+v", res[3].Events)
	}
}

func TestTimeout(t *testing.T) {
	res := runOK(t, &Request{Config: guarded, Origins: map[string][]Rule{"app": {{Fail: "timeout"}}},
		Requests: []Step{{URL: "http://a.test/", Assert: []string{"response.status == 504", `origin_fetches[0].response.fail == "timeout"`}}}})
	_ = res
}

// TestConfigErrors: the errors are those of outpost validate, line and key.
func TestConfigErrors(t *testing.T) {
	bad := strings.Replace(packageIndex(t), "default_ttl: 60s", "default_tll: 60s", 1)
	out := Run(context.Background(), &Request{Config: bad, Requests: []Step{{URL: "http://index.test/"}}})
	if len(out.Results) != 0 || len(out.Errors) != 1 {
		t.Fatalf("got %+v", out)
	}
	_, want := config.Parse(ConfigFile, []byte(bad))
	var ce *config.Error
	if !errors.As(want, &ce) {
		t.Fatal(want)
	}
	e := out.Errors[0]
	if e.Line != ce.Line || e.Line == 0 || e.Key != "routes[2].cache.default_tll" || e.Text != want.Error() {
		t.Errorf("got %+v, want %v", e, want)
	}
}

func TestAssertions(t *testing.T) {
	out := Run(context.Background(), &Request{Config: guarded, Origins: map[string][]Rule{"app": {{Body: "x"}}},
		Requests: []Step{{URL: "http://a.test/", Assert: []string{"response.status == 200", "response.status == 500", "response.nope", "1 +"}}}})
	a := out.Results[0].Assertions
	if !a[0].OK || a[1].OK || a[1].Error != "" || a[2].OK || a[2].Error == "" || a[3].OK || a[3].Error == "" {
		t.Errorf("%+v", a)
	}
}

// TestRunTimeIsBounded: steps not started when the run's time is up are
// reported, not run.
func TestRunTimeIsBounded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	out := Run(ctx, &Request{Config: guarded, Origins: map[string][]Rule{"app": {{Delay: "400ms"}}},
		Requests: []Step{{URL: "http://a.test/"}, {URL: "http://a.test/"}, {URL: "http://a.test/"}}})
	if len(out.Results) != 3 || out.Results[0].Error != "" || !strings.HasPrefix(out.Results[2].Error, "not run: ") {
		t.Errorf("%+v", out.Results)
	}
}

// TestFilters: the header edits of a route, and what the way through the
// proxy changed, as the origin and the client saw them.
func TestFilters(t *testing.T) {
	cfg := `
upstreams:
  app: {servers: [{addr: "127.0.0.1:8081"}]}
routes:
  - name: all
    upstream: app
    headers:
      request_set: {X-Edge: "1"}
      request_remove: [Cookie]
      response_remove: [X-Powered-By]
`
	res := runOK(t, &Request{Config: cfg, Origins: map[string][]Rule{"app": {{Headers: map[string]string{"X-Powered-By": "php"}, Body: "x"}}},
		Requests: []Step{{URL: "http://a.test/", Headers: map[string]string{"Cookie": "a=1"},
			Assert: []string{`origin_fetches[0].request.headers["X-Edge"] == "1"`, `!("Cookie" in origin_fetches[0].request.headers)`}}}})
	if !has(res[0], "filter", "request headers", "remove Cookie; set X-Edge: 1") || !has(res[0], "filter", "response headers", "remove X-Powered-By") {
		t.Errorf("configured edits: %+v", res[0].Events)
	}
	if !has(res[0], "filter", "upstream request", "X-Edge: 1") || !has(res[0], "filter", "upstream request", "removed Cookie") ||
		!has(res[0], "filter", "response", "removed X-Powered-By") {
		t.Errorf("observed changes: %+v", res[0].Events)
	}
}
