package e2e

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/fiddle"
)

// fiddleScripts are the package-index origins, for the mocks of the
// fiddle and for the real origins of a node alike.
var fiddleScripts = map[string][]fiddle.Rule{
	"app": {
		{Path: "/simple/requests/", Headers: map[string]string{"Surrogate-Control": "max-age=86400, stale-while-revalidate=300", "Surrogate-Key": "project/requests"}, Body: "requests"},
		{Path: "/pypi/requests/json", Headers: map[string]string{"Content-Type": "application/json"}, Body: "{}"},
		{Path: "/legacy/*", Status: 201, Body: "uploaded"},
		{Path: "/healthz", Body: "ok"},
	},
	"files":   {{Path: "/packages/*", Status: 404}},
	"archive": {{Path: "/packages/*", Headers: map[string]string{"Cache-Control": "max-age=31536000, immutable"}, Body: "old file"}},
}

// scriptOrigin serves a fiddle script from a real server.
func scriptOrigin(t *testing.T, rules []fiddle.Rule) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, rule := range rules {
			if p, prefix := strings.CutSuffix(rule.Path, "*"); (prefix && strings.HasPrefix(r.URL.Path, p)) || r.URL.Path == rule.Path {
				for k, v := range rule.Headers {
					w.Header().Set(k, v)
				}
				w.WriteHeader(max(rule.Status, 200))
				w.Write([]byte(rule.Body))
				return
			}
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// TestFiddleTrailsAreTheNodes: the Fiddle's engine is the production
// engine. The package-index cases run through a node in front of real
// origins and through the fiddle with the same origins scripted, and
// each request's trace (route, cache key, lookup, TTL, store, upstream,
// failover) is the same; only the servers' addresses differ.
func TestFiddleTrailsAreTheNodes(t *testing.T) {
	src, err := os.ReadFile("../examples/package-index.yaml")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OUTPOST_ADMIN_TOKEN", adminToken)
	cfg := strings.NewReplacer(
		"127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:9090", "127.0.0.1:0", "access: stdout", `access: "off"`,
		"127.0.0.1:8081", scriptOrigin(t, fiddleScripts["app"]), "127.0.0.1:8082", scriptOrigin(t, fiddleScripts["app"]),
		"127.0.0.1:8091", scriptOrigin(t, fiddleScripts["files"]), "127.0.0.1:8092", scriptOrigin(t, fiddleScripts["archive"]),
	).Replace(string(src))
	e := startEdge(t, cfg)
	steps := []fiddle.Step{
		{URL: "http://index.test/simple/requests/"}, {URL: "http://index.test/simple/requests/"},
		{URL: "http://index.test/pypi/requests/json"}, {URL: "http://index.test/pypi/requests/json"},
		{URL: "http://index.test/packages/old-0.1.tar.gz"}, {URL: "http://index.test/packages/old-0.1.tar.gz"},
		{URL: "http://index.test/_edge/health"},
		{Method: "POST", URL: "http://index.test/legacy/upload", Body: "release"},
		{URL: "http://index.test/nowhere"},
	}
	for i := range steps {
		steps[i].ClientIP = "127.0.0.1"
		steps[i].Headers = map[string]string{"X-Outpost-Trace": "1"}
	}
	out := fiddle.Run(context.Background(), &fiddle.Request{Config: string(src), Origins: fiddleScripts, Requests: steps})
	if len(out.Errors) > 0 {
		t.Fatal(out.Errors)
	}
	addr := regexp.MustCompile(`upstream=127\.0\.0\.1:\d+`)
	norm := func(s string) string {
		s = addr.ReplaceAllString(s, "upstream=ADDR")
		s, _, _ = strings.Cut(s, "; total=")
		return strings.TrimPrefix(s, "total=")
	}
	for i, s := range steps {
		req, _ := http.NewRequest(cmpOr(s.Method, "GET"), e.URL+strings.TrimPrefix(s.URL, "http://index.test"), strings.NewReader(s.Body))
		req.Host = "index.test"
		req.Header.Set("X-Outpost-Trace", "1")
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		// The fiddle settles after each request; so does the node, or a fill
		// still being stored makes the next request a collapsed one.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := e.Settle(ctx); err != nil {
			t.Fatal(err)
		}
		cancel()
		node, fid := norm(resp.Header.Get("X-Outpost-Trace")), norm(out.Results[i].Trace)
		if node == "" && resp.StatusCode >= 400 {
			fid = "" // the node sends no trace with its error responses
		}
		// The header leaves with the head; the fiddle's trail goes on to the
		// end of the exchange (a miss's "cache-store=stored" comes after
		// its body), so it may only extend the node's.
		if rest, ok := strings.CutPrefix(fid, node); ok && (rest == "" || strings.HasPrefix(rest, "; cache-store=")) {
			fid = node
		}
		if node != fid || resp.StatusCode != out.Results[i].Response.Status {
			t.Errorf("%s %s:\n node   %d %s\n fiddle %d %s", req.Method, s.URL, resp.StatusCode, node, out.Results[i].Response.Status, fid)
		} else {
			t.Logf("%s %s: %d %s", req.Method, s.URL, resp.StatusCode, node)
		}
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
