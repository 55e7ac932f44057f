package e2e

import (
	"net/http"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/internal/testorigin"
)

// TestSetCookieRouteChoice: routes[].cache.set_cookie decides what a
// shared cache does with a response that sets a cookie (RFC 9111 sections
// 3 and 7.3, RFC 6265 section 8): by default it passes it, as Varnish and
// Fastly do; strip stores it without the cookie, which only the client
// that caused the fill gets.
func TestSetCookieRouteChoice(t *testing.T) {
	o := testorigin.New(t)
	h := http.Header{"Cache-Control": {"max-age=60"}, "Set-Cookie": {"session=alice"}}
	o.Respond("/pass/x", 200, h, "p")
	o.Respond("/strip/x", 200, h, "s")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: strip
    match: {path_prefix: /strip/}
    upstream: origin
    cache: {set_cookie: strip}
  - name: pass
    upstream: origin
`, "{{ORIGIN}}", o.Addr())
	for i := range 2 {
		resp, _ := get(t, e.URL+"/pass/x")
		if resp.Header.Get("Set-Cookie") != "session=alice" {
			t.Errorf("pass, request %d: Set-Cookie %q", i, resp.Header.Get("Set-Cookie"))
		}
	}
	if n := o.Hits("/pass/x"); n != 2 {
		t.Errorf("pass: origin saw %d requests, want 2", n)
	}
	first, _ := get(t, e.URL+"/strip/x")
	waitFor(t, func() bool {
		resp, _ := get(t, e.URL+"/strip/x")
		return strings.Contains(resp.Header.Get("Cache-Status"), "; hit")
	})
	hit, b := get(t, e.URL+"/strip/x")
	if first.Header.Get("Set-Cookie") != "session=alice" || hit.Header.Get("Set-Cookie") != "" || b != "s" {
		t.Errorf("strip: the fill's client got Set-Cookie %q, a hit %q (body %q)", first.Header.Get("Set-Cookie"), hit.Header.Get("Set-Cookie"), b)
	}
}

// TestContentRangeOn200IsRelayedAndStored: RFC 9111 section 3.1 excepts
// no end-to-end field from storage; Content-Range on a 200 reaches the
// client on the miss and on the hit.
func TestContentRangeOn200IsRelayedAndStored(t *testing.T) {
	o := testorigin.New(t)
	o.Respond("/cr", 200, http.Header{"Cache-Control": {"max-age=60"}, "Content-Range": {"bytes 0-1/9"}}, "ab")
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.Addr())
	for i := range 2 {
		resp, _ := get(t, e.URL+"/cr")
		if resp.Header.Get("Content-Range") != "bytes 0-1/9" {
			t.Errorf("request %d (%s): Content-Range %q", i, resp.Header.Get("Cache-Status"), resp.Header.Get("Content-Range"))
		}
	}
}
