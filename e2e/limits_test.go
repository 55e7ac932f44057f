package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestRouteRateLimitAnswers429WithRateLimitFields(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	e := startEdge(t, oneRoute+`
    rate_limits:
      - {key: client_ip, rate: 5, per: 1m, burst: 5}
      - {key: "header:X-Api-Key", rate: 1000, per: 1s}
`, "{{ORIGIN}}", origin)
	for i := 0; i < 5; i++ {
		if resp, _ := get(t, e.URL+"/x"); resp.StatusCode != 200 {
			t.Fatalf("request %d within the burst: %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, e.URL+"/x")
	if resp.StatusCode != 429 || !strings.Contains(body, "too many") {
		t.Fatalf("over the limit: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(resp.Header.Get("RateLimit-Policy"), "q=5") ||
		!strings.Contains(resp.Header.Get("RateLimit"), "r=0") {
		t.Fatalf("fields: Retry-After %q RateLimit-Policy %q RateLimit %q", resp.Header.Get("Retry-After"),
			resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}
}

func TestRouteConditionExpressionAndExpressionRateKey(t *testing.T) {
	a := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "A") }))
	b := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "B") }))
	e := startEdge(t, `
upstreams:
  a: {servers: [{addr: "{{A}}"}]}
  b: {servers: [{addr: "{{B}}"}]}
routes:
  - name: beta
    match: {expr: 'headers["x-beta"] == "1" && ip_in(ip, "127.0.0.0/8")'}
    upstream: b
    rate_limits:
      - {key: 'expr:headers["x-tenant"]', rate: 2, per: 1m}
  - name: rest
    upstream: a
`, "{{A}}", a, "{{B}}", b)
	if _, body := get(t, e.URL+"/x"); body != "A" {
		t.Fatalf("without the header: %q", body)
	}
	for i := 0; i < 2; i++ {
		if _, body := get(t, e.URL+"/x", "X-Beta", "1", "X-Tenant", "t1"); body != "B" {
			t.Fatalf("with the header: %q", body)
		}
	}
	if resp, _ := get(t, e.URL+"/x", "X-Beta", "1", "X-Tenant", "t1"); resp.StatusCode != 429 {
		t.Fatalf("tenant t1 over its limit: %d", resp.StatusCode)
	}
	if resp, _ := get(t, e.URL+"/x", "X-Beta", "1", "X-Tenant", "t2"); resp.StatusCode != 200 {
		t.Fatalf("tenant t2 has its own bucket: %d", resp.StatusCode)
	}
}
