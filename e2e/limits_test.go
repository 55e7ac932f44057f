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
