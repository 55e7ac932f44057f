package node

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestStatusAndFiddlePages: the pages are served without data, their
// JSON only with the token, and status.json counts what the node served.
func TestStatusAndFiddlePages(t *testing.T) {
	tokens := writeTokenFile(t, "s3cret")
	n := startNode(t, `admin: {addr: "127.0.0.1:9", token_file: `+tokens+`}
upstreams: {app: {servers: [{addr: "127.0.0.1:9"}]}}
routes: [{name: all, respond: {status: 200, body: "real", headers: {Cache-Control: "max-age=60"}}, cache: {enabled: true}}]
log: {access: "off"}
protection:
  rules: [{name: no-curl, user_agents: [curl], action: deny}]
`, Options{})
	for range 3 {
		publicGet(t, n, "/")
	}
	for _, p := range []string{"/", "/fiddle/"} {
		if status, body := adminCall(t, n, "GET", p, ""); status != 200 || !strings.Contains(body, "<!doctype html>") {
			t.Errorf("%s: %d", p, status)
		}
	}
	run := `{"config": "routes: [{name: h, respond: {status: 204}}]\n", "requests": [{"url": "http://x.test/"}]}`
	for _, c := range []struct{ method, path, body string }{{"GET", "/status.json", ""}, {"POST", "/fiddle/api/run", run}, {"GET", "/fiddle/api/example", ""}} {
		if status, _ := adminCall(t, n, c.method, c.path, c.body, "Content-Type", "application/json"); status != 401 {
			t.Errorf("%s without a token: %d", c.path, status)
		}
		if status, body := adminCall(t, n, c.method, c.path, c.body, "Content-Type", "application/json", "Authorization", "Bearer s3cret"); status != 200 {
			t.Errorf("%s: %d %s", c.path, status, body)
		}
	}
	if status, _ := adminCall(t, n, "POST", "/fiddle/api/run", run, "Content-Type", "application/json", "Authorization", "Bearer s3cret", "Origin", "http://evil.example"); status != 403 {
		t.Errorf("cross-site run: %d", status)
	}
	// A request is counted once its response has gone out (App.Log), so
	// the last one may not be counted yet: ask again for a while.
	var st Status
	var body string
	last := 0
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, body = adminCall(t, n, "GET", "/status.json", "", "Authorization", "Bearer s3cret")
		st = Status{}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatal(err)
		}
		last = len(st.Latency.Buckets)
		if st.Latency.Miss[last]+st.Latency.Hit[last] >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if st.Latency.Miss[last] != 1 || st.Latency.Hit[last] != 2 {
		t.Errorf("latency counts: %d misses, %d hits; want 1 and 2", st.Latency.Miss[last], st.Latency.Hit[last])
	}
	if st.ByClass["2xx"] != 3 || len(st.Servers) != 1 || st.Servers[0].Upstream != "app" || len(st.Tiers) != 1 || st.Tiers[0].Tier != "memory" {
		t.Errorf("status: %s", body)
	}
}
