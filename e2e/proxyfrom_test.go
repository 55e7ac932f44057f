package e2e

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestProxyProtocolOnlyFromTheBalancers: a PROXY header names the client
// that the PURGE allow-list and IP rules judge, so a peer outside
// proxy_protocol_from must not get to claim an address. Listener 0 takes
// headers only from 192.0.2.0/24 (the test's 127.0.0.1 is outside it);
// listener 1 takes them from 127.0.0.1, the balancer here.
func TestProxyProtocolOnlyFromTheBalancers(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "page "+r.URL.Path)
	}))
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    proxy_protocol: true
    proxy_protocol_from: [192.0.2.0/24]
  - addr: 127.0.0.1:0
    proxy_protocol: true
    proxy_protocol_from: [127.0.0.1]
purge:
  allow_method_from: [203.0.113.7]
protection:
  rules:
    - {name: office, ips: [203.0.113.7], action: allow}
    - {name: private, path_prefixes: [/private/], action: deny}
`+oneRoute, "{{ORIGIN}}", origin)
	untrusted, balancer := e.Addrs()[0].String(), e.Addrs()[1].String()
	const claim = "PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n"
	if got := proxiedStatus(t, balancer, "PROXY TCP4 198.51.100.1 10.0.0.1 51000 80\r\n", "GET /private/x"); got != 403 {
		t.Fatalf("a stranger behind the balancer reached /private/: %d, want 403", got)
	}
	for _, req := range []string{"GET /private/x", "PURGE /page"} {
		if got := proxiedStatus(t, untrusted, claim, req); got != 0 {
			t.Errorf("%s with a PROXY header from a peer outside proxy_protocol_from: %d, want the connection closed", req, got)
		}
	}
	if got := proxiedStatus(t, untrusted, "", "GET /page"); got != 0 {
		t.Errorf("a direct request from a peer outside proxy_protocol_from: %d, want the connection closed", got)
	}
	// The same claim made by the balancer is believed.
	if got := proxiedStatus(t, balancer, claim, "GET /private/x"); got != 200 {
		t.Errorf("the office behind the balancer: GET /private/x %d, want 200", got)
	}
	if got := proxiedStatus(t, balancer, claim, "PURGE /page"); got != 404 {
		t.Errorf("the office behind the balancer: PURGE %d, want 404 (allowed, nothing cached)", got)
	}
}

// proxiedStatus sends an optional PROXY header and one request, and
// returns the response status, or 0 when the connection closes without
// one.
func proxiedStatus(t *testing.T, addr, header, line string) int {
	t.Helper()
	conn := dialRaw(t, addr)
	io.WriteString(conn, header+line+" HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if strings.Contains(err.Error(), "timeout") {
			t.Fatalf("%s %s: %v", addr, line, err)
		}
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
