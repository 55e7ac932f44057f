package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// recorder is an origin that keeps the head of the last request it got.
type recorder struct {
	mu   sync.Mutex
	last http.Header
}

func (o *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.last = r.Header.Clone()
	o.mu.Unlock()
	io.WriteString(w, "plain")
}

func (o *recorder) header() http.Header {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

// unkeyed are fields an origin may act on while the cache key ignores them.
var unkeyed = []string{
	"X-Original-URL", "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method",
	"X-Method-Override", "X-Forwarded-Port", "X-Forwarded-Scheme", "X-Forwarded-Server",
	"X-Forwarded-Ssl", "X-Host", "X-Original-Host", "Front-End-Https",
}

// TestUnkeyedHeadersNeverReachTheOrigin: one request carrying a field the
// origin acts on (a path rewrite, a method override, a host for absolute
// links) but the cache key ignores would store its answer under an
// ordinary key for everyone, so such fields are stripped, from trusted
// balancers too (they pass their clients' fields on as they came).
func TestUnkeyedHeadersNeverReachTheOrigin(t *testing.T) {
	o := &recorder{}
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    trusted_proxies: [127.0.0.1]
`+oneRoute, "{{ORIGIN}}", serve(t, o))
	var sent []string
	for _, name := range unkeyed {
		sent = append(sent, name, "/admin")
	}
	get(t, e.URL+"/page", append(sent, "X-Forwarded-Host", "evil.example", "X-Outpost-Trace", "1")...)
	got := o.header()
	for _, name := range unkeyed {
		if v, ok := got[http.CanonicalHeaderKey(name)]; ok {
			t.Errorf("origin got %s: %q", name, v)
		}
	}
	if v := got.Get("X-Forwarded-Host"); v == "evil.example" {
		t.Errorf("origin got the client's X-Forwarded-Host %q", v)
	}
	if v := got.Get("X-Outpost-Trace"); v != "" {
		t.Errorf("origin got the trace request field %q", v)
	}

	// One default field kept, one more stripped.
	o2 := &recorder{}
	e2 := startEdge(t, oneRoute+`
proxy:
  keep_request_headers: [x-forwarded-port]
  strip_request_headers: [X-Debug-Mode]
`, "{{ORIGIN}}", serve(t, o2))
	get(t, e2.URL+"/page", "X-Forwarded-Port", "8443", "X-Original-URL", "/admin", "X-Debug-Mode", "1")
	got = o2.header()
	if got.Get("X-Forwarded-Port") != "8443" || got.Get("X-Original-URL") != "" || got.Get("X-Debug-Mode") != "" {
		t.Errorf("with keep [X-Forwarded-Port] and strip [X-Debug-Mode], origin got %v", got)
	}
}

// TestXForwardedProtoFromATrustedBalancerIsKept: a TLS-terminating
// balancer in trusted_proxies knows the client's scheme and this hop does
// not; anyone else's claim is replaced with the scheme of the connection.
func TestXForwardedProtoFromATrustedBalancerIsKept(t *testing.T) {
	for _, tc := range []struct{ trusted, want string }{
		{"[127.0.0.1]", "https"},
		{"[192.0.2.0/24]", "http"},
	} {
		o := &recorder{}
		e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    trusted_proxies: `+tc.trusted+"\n"+oneRoute, "{{ORIGIN}}", serve(t, o))
		get(t, e.URL+"/page", "X-Forwarded-Proto", "https")
		if got := o.header().Get("X-Forwarded-Proto"); got != tc.want {
			t.Errorf("trusted_proxies %s: origin got X-Forwarded-Proto %q, want %q", tc.trusted, got, tc.want)
		}
	}
}

// upgrader is an origin that switches to whatever protocol a request
// names in Upgrade (or, for a request without one, to "evil"), then
// echoes a line; a request it does not switch gets "plain".
func upgrader(t *testing.T, always bool) (string, *recorder) {
	o := &recorder{}
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto := r.Header.Get("Upgrade")
		if proto == "" && always {
			proto = "evil"
		}
		if proto == "" {
			o.ServeHTTP(w, r)
			return
		}
		if i := strings.IndexByte(proto, ','); i >= 0 {
			proto = "evil" // picks one the client may not have
		}
		if r.Header.Get("X-Switch-To") != "" {
			proto = r.Header.Get("X-Switch-To")
		}
		o.ServeHTTP(httpDiscard{}, r)
		conn, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(brw, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: %s\r\n\r\n", proto)
		brw.Flush()
		line, _ := brw.ReadString('\n')
		io.WriteString(conn, "tunnel:"+line)
	})), o
}

type httpDiscard struct{}

func (httpDiscard) Header() http.Header         { return http.Header{} }
func (httpDiscard) Write(b []byte) (int, error) { return len(b), nil }
func (httpDiscard) WriteHeader(int)             {}

// rawExchange sends a raw request and returns the response status and,
// for a 101, what the tunnel answers to one line.
func rawExchange(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	conn := dialRaw(t, addr)
	io.WriteString(conn, req)
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("%q: %v", req, err)
	}
	if resp.StatusCode != 101 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	io.WriteString(conn, "hello\n")
	line, _ := br.ReadString('\n')
	return 101, line
}

// TestOnlyAllowedUpgradesBecomeTunnels: a tunnel carries bytes past every
// rule, limit and the cache, so only protocols on proxy.upgrade_allow
// (websocket by default) are offered to the origin, h2c never, and an
// origin that switches to anything the client did not ask for gets a 502.
func TestOnlyAllowedUpgradesBecomeTunnels(t *testing.T) {
	origin, o := upgrader(t, false)
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin)
	addr := strings.TrimPrefix(e.URL, "http://")
	const head = "GET /u HTTP/1.1\r\nHost: x\r\n"

	for _, tc := range []struct{ name, fields string }{
		{"unknown protocol", "Connection: Upgrade\r\nUpgrade: foo\r\n"},
		{"h2c", "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"},
		{"h2c hidden in a list", "Connection: Upgrade\r\nUpgrade: websocket, h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"},
	} {
		status, body := rawExchange(t, addr, head+tc.fields+"\r\n")
		if status != 200 || body != "plain" {
			t.Errorf("%s: %d %q, want a plain 200", tc.name, status, body)
		}
		if got := o.header(); got.Get("Upgrade") != "" || got.Get("HTTP2-Settings") != "" {
			t.Errorf("%s: origin got Upgrade %q, HTTP2-Settings %q", tc.name, got.Get("Upgrade"), got.Get("HTTP2-Settings"))
		}
	}
	status, line := rawExchange(t, addr, head+"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if status != 101 || line != "tunnel:hello\n" {
		t.Errorf("websocket: %d %q, want a tunnel", status, line)
	}
	status, _ = rawExchange(t, addr, head+"Connection: Upgrade\r\nUpgrade: websocket\r\nX-Switch-To: h2c\r\n\r\n")
	if status != 502 {
		t.Errorf("origin switching a websocket request to h2c: %d, want 502", status)
	}

	// An origin that switches a request that asked for nothing.
	always, _ := upgrader(t, true)
	e2 := startEdge(t, oneRoute, "{{ORIGIN}}", always)
	if status, _ := rawExchange(t, strings.TrimPrefix(e2.URL, "http://"), head+"\r\n"); status != 502 {
		t.Errorf("origin switching a plain request: %d, want 502", status)
	}

	// upgrade_allow: [] allows nothing, not even websocket.
	e3 := startEdge(t, oneRoute+"\nproxy:\n  upgrade_allow: []\n", "{{ORIGIN}}", origin)
	status, body := rawExchange(t, strings.TrimPrefix(e3.URL, "http://"), head+"Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
	if status != 200 || body != "plain" {
		t.Errorf("websocket with upgrade_allow []: %d %q, want a plain 200", status, body)
	}
}

// TestTraceOnlyForTrustedNetworksOrTheToken: a trace shows routes, cache
// keys, upstreams and protection decisions, so it is answered only to
// clients in debug.trace_from (loopback by default) or with the token.
func TestTraceOnlyForTrustedNetworksOrTheToken(t *testing.T) {
	origin := &recorder{}
	addr := serve(t, origin)
	const token = "s3cret-trace-token-0123456789"
	t.Setenv("OUTPOST_TEST_TRACE_TOKEN", token)
	e := startEdge(t, oneRoute+`
debug:
  trace_from: [192.0.2.0/24]
  trace_token_env: OUTPOST_TEST_TRACE_TOKEN
`, "{{ORIGIN}}", addr)
	for _, tc := range []struct {
		value string
		want  bool
	}{{"1", false}, {token + "x", false}, {token[:10], false}, {token, true}} {
		resp, _ := get(t, e.URL+"/t", "X-Outpost-Trace", tc.value)
		if got := resp.Header.Get("X-Outpost-Trace") != ""; got != tc.want {
			t.Errorf("X-Outpost-Trace: %q from outside trace_from: trace %v, want %v", tc.value, got, tc.want)
		}
	}
	if v := origin.header().Get("X-Outpost-Trace"); v != "" {
		t.Errorf("the origin got the trace token: %q", v)
	}

	// By default only loopback clients get one: here the client behind a
	// PROXY balancer on loopback is 203.0.113.7.
	e2 := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    proxy_protocol: true
    proxy_protocol_from: [127.0.0.1]
`+oneRoute, "{{ORIGIN}}", addr)
	conn := dialRaw(t, e2.Addrs()[0].String())
	io.WriteString(conn, "PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\nGET /t HTTP/1.1\r\nHost: x\r\nX-Outpost-Trace: 1\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if v := resp.Header.Get("X-Outpost-Trace"); v != "" {
		t.Errorf("a client on the internet got a trace by default: %q", v)
	}
}

// TestTraceOnTheNodesOwnAnswers: a request that asks for its trace gets
// it on the answers the node makes itself too (no route matched, a rate
// limit, an origin that cannot be reached), each saying why.
func TestTraceOnTheNodesOwnAnswers(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Outpost-Trace", "route=forged-by-the-origin")
		io.WriteString(w, "ok")
	}))
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	e := startEdge(t, `
upstreams:
  origin: {servers: [{addr: "{{ORIGIN}}"}]}
  gone: {servers: [{addr: "{{DEAD}}"}], connect_timeout: 1s, retries: {max: 0}}
routes:
  - name: pages
    match: {path_prefix: /pages/}
    upstream: origin
    rate_limits:
      - {key: client_ip, rate: 1, per: 1m, burst: 1}
  - name: down
    match: {path_prefix: /down/}
    upstream: gone
`, "{{ORIGIN}}", origin, "{{DEAD}}", deadAddr)
	for _, tc := range []struct {
		path   string
		status int
		want   string
	}{
		{"/nowhere", 404, "error=no route"},
		{"/pages/a", 200, "route=pages"},
		{"/pages/a", 429, "limit=pages"},
		{"/down/a", 502, "error="},
	} {
		resp, _ := get(t, e.URL+tc.path, "X-Outpost-Trace", "1")
		trace := resp.Header.Get("X-Outpost-Trace")
		if resp.StatusCode != tc.status || !strings.Contains(trace, tc.want) || len(resp.Header.Values("X-Outpost-Trace")) != 1 {
			t.Errorf("%s: %d, trace %q; want %d and one trace with %q", tc.path, resp.StatusCode, resp.Header.Values("X-Outpost-Trace"), tc.status, tc.want)
		}
	}
	// An origin's own field of that name reaches no one.
	if resp, _ := get(t, e.URL+"/pages/b"); resp.Header.Get("X-Outpost-Trace") != "" {
		t.Errorf("the origin's X-Outpost-Trace reached the client: %q", resp.Header.Get("X-Outpost-Trace"))
	}
}
