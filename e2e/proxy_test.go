package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/net/http2"
)

const oneRoute = `
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    first_byte_timeout: 1s
    connect_timeout: 1s
routes:
  - name: all
    upstream: origin
`

func TestRoutesByHostPathMethodAndHeader(t *testing.T) {
	a := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "A") }))
	b := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "B") }))
	e := startEdge(t, `
upstreams:
  a: {servers: [{addr: "{{A}}"}]}
  b: {servers: [{addr: "{{B}}"}]}
routes:
  - name: canary
    match: {headers: {X-Canary: "1"}}
    upstream: b
  - name: files-host
    match: {hosts: ["files.example.org"]}
    upstream: b
  - name: exact
    match: {path_exact: /exact}
    upstream: b
  - name: post-only
    match: {path_prefix: /api/, methods: [POST]}
    upstream: b
  - name: glob
    match: {path_pattern: "/simple/*/json"}
    upstream: b
  - name: rest
    upstream: a
`, "{{A}}", a, "{{B}}", b)
	cases := []struct {
		name, path string
		header     []string
		want       string
	}{
		{"header", "/x", []string{"X-Canary", "1"}, "B"},
		{"host", "/x", []string{"Host", "files.example.org"}, "B"},
		{"other host", "/x", []string{"Host", "www.example.org"}, "A"},
		{"exact", "/exact", nil, "B"},
		{"exact is not prefix", "/exact/more", nil, "A"},
		{"method mismatch", "/api/x", nil, "A"},
		{"glob", "/simple/requests/json", nil, "B"},
		{"glob stays in a segment", "/simple/a/b/json", nil, "A"},
	}
	for _, tc := range cases {
		_, body := get(t, e.URL+tc.path, tc.header...)
		if body != tc.want {
			t.Errorf("%s: routed to %q, want %q", tc.name, body, tc.want)
		}
	}
}

func TestHangingOriginGives504AndDeadOriginGives502(t *testing.T) {
	hang := listen(t)
	go func() {
		for {
			c, err := hang.Accept()
			if err != nil {
				return
			}
			defer c.Close() // read nothing, answer nothing
		}
	}()
	dead := listen(t)
	deadAddr := dead.Addr().String()
	dead.Close()
	for _, tc := range []struct {
		origin string
		want   int
	}{{hang.Addr().String(), 504}, {deadAddr, 502}} {
		e := startEdge(t, oneRoute, "{{ORIGIN}}", tc.origin)
		start := time.Now()
		resp, body := get(t, e.URL+"/x")
		if resp.StatusCode != tc.want || body == "" {
			t.Errorf("origin %s: status %d %q, want %d with a reason", tc.origin, resp.StatusCode, body, tc.want)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("took %v: the client must not hang", time.Since(start))
		}
	}
}

func TestUpstreamConnectionsAreReused(t *testing.T) {
	var conns atomic.Int64
	l := listen(t)
	s := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ConnState: func(_ net.Conn, st http.ConnState) {
			if st == http.StateNew {
				conns.Add(1)
			}
		},
	}
	go s.Serve(l)
	defer s.Close()
	e := startEdge(t, oneRoute, "{{ORIGIN}}", l.Addr().String())
	const n = 10000
	var wg sync.WaitGroup
	var failed atomic.Int64
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n/8; i++ {
				resp, err := testClient.Get(e.URL + "/r")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if failed.Load() > 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	opened := conns.Load()
	reuse := 1 - float64(opened)/n
	t.Logf("%d requests, %d upstream connections: reuse %.4f", n, opened, reuse)
	if reuse < 0.999 {
		t.Fatalf("upstream reuse %.4f < 0.999 (%d connections for %d requests)", reuse, opened, n)
	}
	if got := metric(t, e, `outpost_upstream_connections_opened_total{server="`+l.Addr().String()); got != float64(opened) {
		t.Errorf("metric of opened connections = %v, origin saw %d", got, opened)
	}
}

func TestWebSocketThroughTheProxy(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(r.Context())
			if err != nil {
				return
			}
			if err := c.Write(r.Context(), typ, append([]byte("echo:"), msg...)); err != nil {
				return
			}
		}
	}))
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(e.URL, "http")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf("message %d %s", i, strings.Repeat("x", i*1000))
		if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := c.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != "echo:"+msg {
			t.Fatalf("got %q", got[:min(len(got), 40)])
		}
	}
	c.Close(websocket.StatusNormalClosure, "")
}

func TestH2CAndKeepAliveClientsBothServed(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "hello "+r.URL.Path) }))
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin)
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLS: func(n, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(n, a) }}}
	resp, err := h2c.Get(e.URL + "/two")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || string(b) != "hello /two" {
		t.Fatalf("h2c: proto %d body %q", resp.ProtoMajor, b)
	}
	// HTTP/1.0 without a Host, short enough to look like a partial preface.
	conn := dialRaw(t, strings.TrimPrefix(e.URL, "http://"))
	io.WriteString(conn, "GET /one HTTP/1.0\r\n\r\n")
	r, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r.Body)
	if string(b) != "hello /one" {
		t.Fatalf("HTTP/1.0: %q", b)
	}
}
