package fiddle

import (
	"fmt"
	"strings"
	"testing"
)

// TestMockTLSAndH2: mock origins speak what the upstream is configured
// to: HTTP/1.1 over TLS, HTTP/2 over TLS with ALPN h2 (RFC 9113 section
// 3.2), cleartext HTTP/2 with prior knowledge (section 3.3); the upstream
// verifies the mock's certificate, sending the configured SNI.
func TestMockTLSAndH2(t *testing.T) {
	for _, c := range []struct {
		upstream, wire, alpn, sni string
	}{
		// The HTTP/1.1 client offers no ALPN.
		{`servers: [{addr: "127.0.0.1:8081"}], tls: {enabled: true, sni: origin.test}`, "HTTP/1.1", "", "origin.test"},
		{`servers: [{addr: "127.0.0.1:8081"}], protocol: h2, tls: {enabled: true, sni: origin.test}`, "HTTP/2.0", "h2", "origin.test"},
		{`servers: [{addr: "a.origin.test:443"}], protocol: h2, tls: {enabled: true}`, "HTTP/2.0", "h2", "a.origin.test"},
		{`servers: [{addr: "127.0.0.1:8081"}], protocol: h2c`, "HTTP/2.0", "", ""},
	} {
		cfg := fmt.Sprintf(`
listeners: [{addr: "127.0.0.1:8080"}]
upstreams:
  app: {%s}
routes:
  - match: {path_prefix: /}
    upstream: app
`, c.upstream)
		body := strings.Repeat("x", 100)
		res := runOK(t, &Request{Config: cfg,
			Origins: map[string][]Rule{"app": {{Path: "/ok", Headers: map[string]string{"Cache-Control": "max-age=60"}, Body: body},
				{Path: "/reset", Body: body, Fail: "reset"}}},
			Requests: []Step{{URL: "http://site.test/ok"}, {URL: "http://site.test/reset"}}})
		ok, reset := res[0], res[1]
		if ok.Response.Status != 200 || ok.Response.Body != body || len(ok.OriginFetches) != 1 {
			t.Errorf("%s: %+v, %d fetches\n%s", c.upstream, ok.Response, len(ok.OriginFetches), trail(ok))
			continue
		}
		f := ok.OriginFetches[0].Request
		if f.Protocol != c.wire {
			t.Errorf("%s: the mock got %s, want %s", c.upstream, f.Protocol, c.wire)
		}
		switch {
		case c.sni == "" && f.TLS != nil:
			t.Errorf("%s: TLS %+v on a cleartext upstream", c.upstream, f.TLS)
		case c.sni != "" && (f.TLS == nil || f.TLS.ALPN != c.alpn || f.TLS.SNI != c.sni):
			t.Errorf("%s: TLS %+v, want ALPN %s and SNI %s", c.upstream, f.TLS, c.alpn, c.sni)
		}
		if reset.Response.Status < 500 && reset.Response.BodyBytes == int64(len(body)) {
			t.Errorf("%s: a reset origin gave the client %+v", c.upstream, reset.Response)
		}
	}
}

// TestMockTLSVerify: the upstream's verify setting is kept; with verify
// off the notes say the mocks' certificate is not checked.
func TestMockTLSVerify(t *testing.T) {
	cfg := `
listeners: [{addr: "127.0.0.1:8080"}]
upstreams:
  app: {servers: [{addr: "127.0.0.1:8081"}], tls: {enabled: true, verify: false}}
routes:
  - match: {path_prefix: /}
    upstream: app
`
	out := Run(t.Context(), &Request{Config: cfg, Origins: map[string][]Rule{"app": {{Body: "ok"}}},
		Requests: []Step{{URL: "http://site.test/"}}})
	if len(out.Results) != 1 || out.Results[0].Response.Status != 200 {
		t.Fatalf("%+v %+v", out.Errors, out.Results)
	}
	if notes := strings.Join(out.Notes, "\n"); !strings.Contains(notes, "tls.verify false") || !strings.Contains(notes, "tls.ca") {
		t.Errorf("notes: %s", notes)
	}
}
