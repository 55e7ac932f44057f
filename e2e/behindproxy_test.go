package e2e

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// Behind a trusted balancer, the client is the nearest untrusted address
// in X-Forwarded-For: each client has its own rate-limit bucket (they all
// shared the balancer's), and an untrusted peer's X-Forwarded-For counts
// for nothing.
func TestClientIPBehindTrustedProxiesHasItsOwnBucket(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	cfg := `
listeners:
  - addr: 127.0.0.1:0
    trusted_proxies: [{{TRUST}}]
` + oneRoute + `
    rate_limits:
      - {key: client_ip, rate: 1, per: 1m, burst: 1}
`
	behind := startEdge(t, cfg, "{{ORIGIN}}", origin, "{{TRUST}}", "127.0.0.1/32")
	for _, client := range []string{"192.0.2.1", "192.0.2.2", "10.0.0.1, 192.0.2.3"} {
		if resp, _ := get(t, behind.URL+"/x", "X-Forwarded-For", client); resp.StatusCode != 200 {
			t.Errorf("first request of %s: %d", client, resp.StatusCode)
		}
	}
	if resp, _ := get(t, behind.URL+"/x", "X-Forwarded-For", "192.0.2.1"); resp.StatusCode != 429 {
		t.Errorf("second request of 192.0.2.1: %d, want 429", resp.StatusCode)
	}

	direct := startEdge(t, cfg, "{{ORIGIN}}", origin, "{{TRUST}}", "192.0.2.0/24")
	get(t, direct.URL+"/x", "X-Forwarded-For", "192.0.2.7")
	if resp, _ := get(t, direct.URL+"/x", "X-Forwarded-For", "192.0.2.8"); resp.StatusCode != 429 {
		t.Errorf("an untrusted peer choosing its X-Forwarded-For: %d, want 429", resp.StatusCode)
	}
}

// A TLS-terminating balancer's X-Forwarded-Proto is the request's scheme:
// the cache keys https and http apart behind it, so the redirect an
// origin makes for http is never served to https clients.
func TestTrustedForwardedProtoKeysTheCache(t *testing.T) {
	var fetches atomic.Int32
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		w.Header().Set("Cache-Control", "max-age=600")
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			http.Redirect(w, r, "https://shop.example"+r.URL.Path, http.StatusMovedPermanently)
			return
		}
		io.WriteString(w, "secure page")
	}))
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    trusted_proxies: [127.0.0.1/32]
`+oneRoute, "{{ORIGIN}}", origin)
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(proto string) (int, string) {
		req, _ := http.NewRequest("GET", e.URL+"/p", nil)
		req.Header.Set("X-Forwarded-Proto", proto)
		resp, err := noRedirect.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("http"); code != 301 {
		t.Fatalf("http: %d", code)
	}
	if code, body := do("https"); code != 200 || !strings.Contains(body, "secure") {
		t.Fatalf("https after a cached http redirect: %d %q", code, body)
	}
	if code, _ := do("https"); code != 200 || fetches.Load() != 2 {
		t.Fatalf("https again: %d after %d fetches, want a hit", code, fetches.Load())
	}
}
