package e2e

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	edgeapp "github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/node"
	"github.com/outpost-edge/outpost/proxy"
)

// poisonConfig sends shop.example to origin A and everything else, and
// every request a selector picks out, to origin B; every route caches.
const poisonConfig = `
upstreams:
  a: {servers: [{addr: "{{A}}"}]}
  b: {servers: [{addr: "{{B}}"}]}
routes:
  - name: canary
    match: {headers: {X-Canary: "1"}}
    upstream: b
    cache: {enabled: true}
  - name: beta
    match: {expr: 'headers["x-beta"] == "yes"'}
    upstream: b
    cache: {enabled: true}
  - name: hooked
    match: {headers: {X-Never-Sent: "*"}}
    upstream: b
    cache: {enabled: true}
  - name: shop
    match: {hosts: [shop.example]}
    upstream: a
    cache: {enabled: true}
  - name: other
    upstream: b
    cache: {enabled: true}
`

// poisonOrigin answers name and the path, cacheable for ten minutes.
func poisonOrigin(t *testing.T, name string) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, name+" "+r.URL.Path)
	}))
}

// hookedPhases is an embedder's Route phase: X-Canary-Hook requests go to
// the route named "hooked" (origin B).
type hookedPhases struct{ *edgeapp.App }

func (h hookedPhases) Route(ctx *proxy.Ctx) error {
	if string(ctx.Request.Header.Peek("X-Canary-Hook")) == "1" {
		if r := h.RouteNamed("hooked"); r != nil {
			ctx.Route = r
			return nil
		}
	}
	return h.App.Route(ctx)
}

func TestPoisonARequestSelectingOriginBNeverServesOriginAUsers(t *testing.T) {
	e := startEdgeWith(t, node.Options{Phases: func(app *edgeapp.App) any { return hookedPhases{app} }},
		poisonConfig, "{{A}}", poisonOrigin(t, "A"), "{{B}}", poisonOrigin(t, "B"))
	for _, tc := range []struct {
		name   string
		header []string // of the request that selects B (or tries to)
		toB    bool     // it must select B, or the case tests nothing
	}{
		{"host with a trailing dot", []string{"Host", "shop.example."}, false},
		{"host in upper case", []string{"Host", "SHOP.example"}, false},
		{"host with the default port", []string{"Host", "shop.example:80"}, false},
		{"header-matched route", []string{"Host", "shop.example", "X-Canary", "1"}, true},
		{"CEL-matched route", []string{"Host", "shop.example", "X-Beta", "yes"}, true},
		{"embedder's Route hook", []string{"Host", "shop.example", "X-Canary-Hook", "1"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := e.URL + "/poison/" + strings.NewReplacer(" ", "-", "'", "").Replace(tc.name)
			_, first := get(t, url, tc.header...)
			if tc.toB && !strings.HasPrefix(first, "B ") {
				t.Fatalf("the selector did not pick origin B: %q", first)
			}
			for range 2 { // the second would be a hit
				resp, body := get(t, url, "Host", "shop.example")
				if !strings.HasPrefix(body, "A ") {
					t.Fatalf("after %q (answered %q), a shop.example user got %q (X-Cache %q)", tc.header, first, body, resp.Header.Get("X-Cache"))
				}
			}
		})
	}
}

func TestPoisonACleartextRedirectIsNotServedToHTTPS(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		if r.Header.Get("X-Forwarded-Proto") != "https" {
			w.Header().Set("Location", "https://"+r.Host+r.URL.RequestURI())
			w.WriteHeader(301)
			return
		}
		io.WriteString(w, "secure")
	}))
	cert, key, pool := writeCert(t, t.TempDir(), "shop", "shop.example")
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
  - addr: 127.0.0.1:0
    tls:
      certs:
        - {cert: "{{CERT}}", key: "{{KEY}}"}
upstreams:
  origin: {servers: [{addr: "{{ORIGIN}}"}]}
routes:
  - name: shop
    upstream: origin
    cache: {enabled: true}
`, "{{CERT}}", cert, "{{KEY}}", key, "{{ORIGIN}}", origin)
	tlsAddr := e.Addrs()[1].String()
	httpsClient := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: "shop.example", RootCAs: pool},
			ForceAttemptHTTP2: true,
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, tlsAddr)
			},
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	for _, path := range []string{"/page", "/page?q=1"} {
		req, _ := http.NewRequest("GET", e.URL+path, nil)
		req.Host = "shop.example"
		resp, err := testClient.Transport.RoundTrip(req) // no redirects followed
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 301 {
			t.Fatalf("cleartext %s: status %d, want the origin's 301", path, resp.StatusCode)
		}
		for range 2 {
			resp, err := httpsClient.Get("https://shop.example" + path)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(b) != "secure" {
				t.Fatalf("https %s after a cleartext request: %d %q (Location %q): the redirect loops", path, resp.StatusCode, b, resp.Header.Get("Location"))
			}
		}
	}
}
