package server_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/outpost-edge/outpost/h2"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/internal/malformed"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/server"
)

// netPeer sends upstream requests with net/http: enough to test the
// downstream side on its own.
type netPeer struct {
	addr string
	hits atomic.Int64
}

func (p *netPeer) Addr() string { return p.addr }
func (p *netPeer) Pick(*proxy.Ctx, int) (proxy.Peer, error) {
	return p, nil
}
func (p *netPeer) Finish(*proxy.Ctx, proxy.Peer, int, *httphead.Response, error, time.Duration) bool {
	return false
}

func (p *netPeer) RoundTrip(c *proxy.Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	p.hits.Add(1)
	hr, err := http.NewRequestWithContext(c, string(req.Method), "http://"+p.addr+string(req.Target), body)
	if err != nil {
		return nil, err
	}
	hr.ContentLength = req.ContentLength
	for i := 0; i < req.Header.Len(); i++ {
		n, v := req.Header.Field(i)
		hr.Header.Add(string(n), string(v))
	}
	hr.Host = string(req.Host)
	hresp, err := http.DefaultTransport.RoundTrip(hr)
	if err != nil {
		return nil, err
	}
	resp.Status = hresp.StatusCode
	resp.ProtoMajor, resp.ProtoMinor = 1, 1
	resp.ContentLength = hresp.ContentLength
	for n, vs := range hresp.Header {
		for _, v := range vs {
			resp.Header.AddString(n, v)
		}
	}
	return hresp.Body, nil
}

type testApp struct{ route proxy.Route }

func (a *testApp) Route(c *proxy.Ctx) error {
	if bytes.HasPrefix(c.Request.Path, []byte("/none")) {
		return nil
	}
	c.Route = &a.route
	return nil
}

// start runs a server in front of an origin handler.
func start(t *testing.T, origin http.Handler) (addr string, peer *netPeer, srv *server.Server) {
	t.Helper()
	o := httptest.NewServer(origin)
	t.Cleanup(o.Close)
	peer = &netPeer{addr: o.Listener.Addr().String()}
	eng, err := proxy.New(&testApp{route: proxy.Route{Name: "all", Upstream: peer}}, proxy.Options{TraceHeader: "X-Trace", TraceFrom: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
	if err != nil {
		t.Fatal(err)
	}
	srv = server.New(server.Runtime{Engine: eng, Limits: server.Limits{MaxBodyBytes: 1 << 20}}, nil)
	srv.H2 = h2.NewServer(h2.Limits{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l, server.Listener{H2C: true})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String(), peer, srv
}

func echoOrigin() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-XFF", r.Header.Get("X-Forwarded-For"))
		w.Header().Set("X-Seen-Via", r.Header.Get("Via"))
		w.Header().Set("X-Seen-Secret", r.Header.Get("X-Secret"))
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Id", r.Header.Get("X-Request-Id"))
		body, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s %s %d %x", r.Method, r.URL.RequestURI(), len(body), sha256.Sum256(body))
	})
}

func TestProxiesGetWithForwardingFieldsAndNoHopByHop(t *testing.T) {
	addr, _, _ := start(t, echoOrigin())
	req, _ := http.NewRequest("GET", "http://"+addr+"/a?b=1", nil)
	req.Header.Set("Connection", "X-Secret")
	req.Header.Set("X-Secret", "must not pass")
	req.Header.Set("X-Forwarded-For", "6.6.6.6") // spoofed: not trusted
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(body), "GET /a?b=1 0 ") {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if got := resp.Header.Get("X-Seen-XFF"); got != "127.0.0.1" {
		t.Errorf("origin saw X-Forwarded-For %q, want the real client only", got)
	}
	if got := resp.Header.Get("X-Seen-Secret"); got != "" {
		t.Errorf("field named in Connection reached the origin: %q", got)
	}
	if got := resp.Header.Get("X-Seen-Via"); got != "1.1 outpost" {
		t.Errorf("origin saw Via %q", got)
	}
	if resp.Header.Get("X-Seen-Id") == "" {
		t.Error("no X-Request-Id upstream")
	}
	if !strings.Contains(resp.Header.Get("Via"), "outpost") {
		t.Errorf("response Via %q", resp.Header.Get("Via"))
	}
}

func TestStreamsLargeUploadAndChunkedRequest(t *testing.T) {
	addr, _, _ := start(t, echoOrigin())
	payload := make([]byte, 512<<10)
	rand.Read(payload)
	want := fmt.Sprintf("POST /up %d %x", len(payload), sha256.Sum256(payload))
	for _, chunked := range []bool{false, true} {
		var body io.Reader = bytes.NewReader(payload)
		if chunked {
			body = io.MultiReader(body) // hides the length: sent chunked
		}
		req, _ := http.NewRequest("POST", "http://"+addr+"/up", body)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(got) != want {
			t.Fatalf("chunked=%v: got %q want %q", chunked, got, want)
		}
	}
}

func TestBodyOverLimitGets413(t *testing.T) {
	addr, peer, _ := start(t, echoOrigin())
	// The declared length is over the limit: the answer comes before any
	// body byte is read (a client still sending would see its write fail).
	status := rawStatus(t, addr, "POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 2097152\r\n\r\n")
	if status != 413 || peer.hits.Load() != 0 {
		t.Fatalf("status %d, origin hits %d", status, peer.hits.Load())
	}
}

func TestKeepAliveServesManyRequestsOnOneConnection(t *testing.T) {
	addr, _, _ := start(t, echoOrigin())
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := 0; i < 50; i++ {
		fmt.Fprintf(conn, "GET /k/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, _ := io.ReadAll(resp.Body)
		if !strings.HasPrefix(string(b), fmt.Sprintf("GET /k/%d ", i)) {
			t.Fatalf("request %d: %q", i, b)
		}
	}
}

func TestNoRouteIs404AndAbsoluteFormForeignHostIs421(t *testing.T) {
	addr, peer, _ := start(t, echoOrigin())
	for _, tc := range []struct {
		raw  string
		want int
	}{
		{"GET /none HTTP/1.1\r\nHost: x\r\n\r\n", 404},
		{"GET http://elsewhere.example/none HTTP/1.1\r\nHost: elsewhere.example\r\n\r\n", 421},
	} {
		if got := rawStatus(t, addr, tc.raw); got != tc.want {
			t.Errorf("%q: status %d, want %d", tc.raw, got, tc.want)
		}
	}
	if peer.hits.Load() != 0 {
		t.Fatal("a request without a route reached the origin")
	}
}

func rawStatus(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestMalformedRequestsAreRejectedBeforeTheOrigin(t *testing.T) {
	addr, peer, _ := start(t, echoOrigin())
	for _, tc := range malformed.Cases {
		got := rawStatus(t, addr, tc.Raw)
		if got != tc.Status {
			t.Errorf("%s: status %d, want %d", tc.Name, got, tc.Status)
		}
	}
	if n := peer.hits.Load(); n != 0 {
		// Body cases have a valid head and reach the origin only as far
		// as the body framing goes; none may complete there.
		t.Logf("origin saw %d requests with broken bodies", n)
	}
}

func TestH2CPriorKnowledgeAndTraceHeader(t *testing.T) {
	addr, _, _ := start(t, echoOrigin())
	c := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLS: func(network, a string, _ *tls.Config) (net.Conn, error) {
		return net.Dial(network, a)
	}}}
	req, _ := http.NewRequest("GET", "http://"+addr+"/h2", nil)
	req.Header.Set("X-Trace", "1")
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 || !strings.HasPrefix(string(b), "GET /h2 ") {
		t.Fatalf("proto %d body %q", resp.ProtoMajor, b)
	}
	if tr := resp.Header.Get("X-Outpost-Trace"); !strings.Contains(tr, "route=all") || !strings.Contains(tr, "upstream=") {
		t.Fatalf("trace header %q", tr)
	}
}

func TestExpect100ContinueIsAnsweredBeforeTheBodyIsSent(t *testing.T) {
	addr, _, _ := start(t, echoOrigin())
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "HTTP/1.1 100 ") {
		t.Fatalf("before the body: %q %v, want 100 Continue", line, err)
	}
	br.ReadString('\n') // the empty line ending the interim response
	io.WriteString(conn, "hello")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(string(b), "POST /up 5 ") {
		t.Fatalf("got %d %q", resp.StatusCode, b)
	}
}
