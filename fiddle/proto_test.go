package fiddle

import (
	"fmt"
	"strings"
	"testing"
)

// trail is a result's decisions without their timings, and without the
// reasons that differ by client rather than by decision: the server the
// balancer drew, what the filters changed (the fields a client sends,
// Via's protocol version, the request id).
func trail(r Result) string {
	var b strings.Builder
	for _, e := range r.Events {
		reason := e.Reason
		if e.Phase == "filter" || (e.Phase == "upstream" && e.Decision == "server") {
			reason = ""
		}
		fmt.Fprintf(&b, "%s %s %s detached=%v\n", e.Phase, e.Decision, reason, e.Detached)
	}
	return b.String()
}

// TestProtocols runs the same requests over HTTP/1.1, HTTP/1.1 over TLS,
// HTTP/2 with prior knowledge and HTTP/2 over TLS (RFC 9113 sections
// 3.2 and 3.3): the engine decides the same way on each, and the client
// gets the same response.
func TestProtocols(t *testing.T) {
	steps := func(proto string, tls bool) []Step {
		return []Step{
			{URL: "http://index.test/simple/x/", Protocol: proto, TLS: tls, Headers: map[string]string{"Accept": "text/html"}},
			{URL: "http://index.test/simple/x/", Protocol: proto, TLS: tls, Headers: map[string]string{"Accept": "text/html"}},
		}
	}
	run := func(proto string, tls bool) []Result {
		return runOK(t, &Request{Config: packageIndex(t), Origins: map[string][]Rule{"app": {indexPage}}, Requests: steps(proto, tls)})
	}
	// Over TLS the scheme is https, and so is the cache key: each run is
	// held to HTTP/1.1 with the same TLS.
	h1 := map[bool][]Result{false: run("h1", false), true: run("h1", true)}
	for tls, want := range h1 {
		if want[0].Request.Protocol != "HTTP/1.1" || !has(want[1], "cache", "hit", "") {
			t.Fatalf("over HTTP/1.1 (tls %v): %+v\n%s", tls, want[1].Request, trail(want[1]))
		}
	}
	if !has(h1[true][0], "cache", "key", "https://index.test/simple/x/") {
		t.Errorf("over TLS, the scheme is not https:\n%s", trail(h1[true][0]))
	}
	for _, c := range []struct {
		proto, wire string
		tls         bool
		alpn        string
	}{
		{"h1", "HTTP/1.1", true, "http/1.1"},
		{"h2", "HTTP/2.0", false, ""},
		{"h2", "HTTP/2.0", true, "h2"},
	} {
		name := fmt.Sprintf("%s tls=%v", c.proto, c.tls)
		got, want := run(c.proto, c.tls), h1[c.tls]
		for i := range got {
			g, w := got[i], want[i]
			if g.Request.Protocol != c.wire {
				t.Errorf("%s step %d: protocol %q", name, i, g.Request.Protocol)
			}
			if trail(g) != trail(w) {
				t.Errorf("%s step %d: decisions differ from HTTP/1.1:\n%s\nwant:\n%s", name, i, trail(g), trail(w))
			}
			if g.Response.Status != 200 || g.Response.Body != indexPage.Body ||
				g.Response.Headers["Content-Length"] != w.Response.Headers["Content-Length"] {
				t.Errorf("%s step %d: response %+v", name, i, g.Response)
			}
			if c.tls {
				tl := g.Request.TLS
				if tl == nil || tl.SNI != "index.test" || tl.ALPN != c.alpn || tl.Version != "TLS 1.3" || !strings.HasPrefix(tl.JA4, "t13d") {
					t.Errorf("%s step %d: TLS %+v", name, i, tl)
				}
			}
		}
		if len(got[0].OriginFetches) != 1 || len(got[1].OriginFetches) != 0 {
			t.Errorf("%s: %d and %d origin fetches, want 1 and 0", name, len(got[0].OriginFetches), len(got[1].OriginFetches))
		}
	}
}

// TestProtocolUnknown: a protocol the fiddle does not speak is a request error.
func TestProtocolUnknown(t *testing.T) {
	out := Run(t.Context(), &Request{Config: packageIndex(t), Requests: []Step{{URL: "http://index.test/", Protocol: "h3"}}})
	if len(out.Errors) != 1 || out.Errors[0].Key != "requests[0].protocol" {
		t.Fatalf("errors: %+v", out.Errors)
	}
}

// TestProtocolFingerprint: the JA4 the rules see is the handshake's (the
// Go client's, TLS 1.3 with SNI: "t13d..."), or the one the step names,
// and none in cleartext.
func TestProtocolFingerprint(t *testing.T) {
	cfg := `
upstreams:
  app: {servers: [{addr: "127.0.0.1:8081"}]}
routes:
  - {name: all, upstream: app}
protection:
  rules:
    - {name: tls13, ja4: ["t13d*"], action: deny}
`
	for _, proto := range []string{"h1", "h2"} {
		res := runOK(t, &Request{Config: cfg, Origins: map[string][]Rule{"app": {{Body: "hello"}}},
			Requests: []Step{
				{URL: "https://a.test/", Protocol: proto, Assert: []string{"response.status == 403"}},
				{URL: "https://a.test/", Protocol: proto, JA4: "t12i0000_000000000000_000000000000", Assert: []string{"response.status == 200"}},
				{URL: "http://a.test/", Protocol: proto, Assert: []string{"response.status == 200"}},
			}})
		if !has(res[0], "protection", "deny", "rule tls13") || !strings.HasPrefix(res[0].Request.TLS.JA4, "t13d") {
			t.Errorf("%s: the handshake's fingerprint: %+v\n%s", proto, res[0].Request.TLS, trail(res[0]))
		}
		if res[2].Request.TLS != nil {
			t.Errorf("%s: TLS %+v in cleartext", proto, res[2].Request.TLS)
		}
	}
}
