package e2e

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"

	"github.com/outpost-edge/outpost/wasm/wasmtest"
)

// trailerOrigin answers with the request body and the trailer section it
// received, sorted: "body|name=value;...".
func trailerOrigin(t *testing.T, h2 bool) string {
	h := http.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var got []string
		for name, values := range r.Trailer {
			for _, v := range values {
				if v != "" { // net/http keeps declared names with no value
					got = append(got, strings.ToLower(name)+"="+v)
				}
			}
		}
		slices.Sort(got)
		io.WriteString(w, string(b)+"|"+strings.Join(got, ";"))
	}))
	if h2 {
		h = h2c.NewHandler(h, &http2.Server{})
	}
	return serve(t, h)
}

// sendTrailers sends a POST of unknown length with the given trailer
// section through client (HTTP/2 or HTTP/3), or over HTTP/1.1 as raw
// chunked bytes when client is nil, and returns the status and body. The head declares the trailer fields (and X-Sum-Seen, which
// the filter adds): Go's HTTP/2 server keeps only declared ones.
func sendTrailers(t *testing.T, base, path string, c *http.Client, trailers map[string]string) (int, string) {
	t.Helper()
	if c != nil {
		req, _ := http.NewRequest("POST", base+path, io.NopCloser(strings.NewReader("payload")))
		req.ContentLength = -1
		req.Trailer = http.Header{"X-Sum-Seen": nil} // declared, for the filter to set
		for k, v := range trailers {
			req.Trailer.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	conn := dialRaw(t, strings.TrimPrefix(base, "http://"))
	var sb strings.Builder
	sb.WriteString("POST " + path + " HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, X-Secret, X-Sum-Seen, X-Deny\r\nConnection: close\r\n\r\n7\r\npayload\r\n0\r\n")
	for k, v := range trailers {
		sb.WriteString(k + ": " + v + "\r\n")
	}
	sb.WriteString("\r\n")
	io.WriteString(conn, sb.String())
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// trailerRoutes is the edge of the request and response trailer tests:
// the /f/ routes run the test filter in "trailers" mode, the others none.
const trailerRoutes = `
upstreams:
  origin: {servers: [{addr: "{{ORIGIN}}"}], protocol: {{PROTO}}, first_byte_timeout: 2s}
wasm:
  filters:
    trailers: {file: "{{TEST}}", config: trailers}
routes:
  - {name: filtered, match: {path_prefix: /f/}, upstream: origin, filters: [trailers]}
  - {name: plain, upstream: origin}
`

// TestRequestTrailersReachOriginsAndFilters: a request's trailer section
// goes from an HTTP/1.1 (chunked) or HTTP/2 client to an HTTP/1.1 or
// HTTP/2 origin; the fields a trailer section must not carry (RFC 9110
// section 6.5.1: Authorization, Content-Type, ...) are dropped; a route's
// Proxy-Wasm filter gets proxy_on_request_trailers and may edit the
// section or answer the request.
func TestRequestTrailersReachOriginsAndFilters(t *testing.T) {
	filter := wasmtest.Build(t, "testfilter")
	for _, up := range []string{"http1", "h2c"} {
		origin := trailerOrigin(t, up == "h2c")
		e := startEdge(t, trailerRoutes, "{{ORIGIN}}", origin, "{{PROTO}}", up, "{{TEST}}", filter)
		h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
			DialTLS: func(n, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(n, a) }}}
		for _, c := range []*http.Client{nil, h2} {
			name := up + " origin, HTTP/1.1 client"
			if c != nil {
				name = up + " origin, HTTP/2 client"
			}
			t.Run(name, func(t *testing.T) {
				checkTrailers(t, e.URL, c)
			})
		}
	}
}

// checkTrailers sends the trailer cases through an edge whose /f/ routes
// run the test filter in "trailers" mode.
func checkTrailers(t *testing.T, base string, c *http.Client) {
	t.Helper()
	sent := map[string]string{"X-Sum": "abc", "X-Secret": "s", "Authorization": "Bearer t", "Content-Type": "text/evil"}
	status, body := sendTrailers(t, base, "/plain", c, sent)
	if status != 200 || body != "payload|x-secret=s;x-sum=abc" {
		t.Errorf("no filter: %d %q, want the trailers less Authorization and Content-Type", status, body)
	}
	status, body = sendTrailers(t, base, "/f/edit", c, sent)
	if status != 200 || body != "payload|x-sum-seen=abc;x-sum=abc" {
		t.Errorf("filter: %d %q, want X-Sum-Seen added and X-Secret removed", status, body)
	}
	status, body = sendTrailers(t, base, "/f/deny", c, map[string]string{"X-Deny": "1"})
	if status != 403 || strings.Contains(body, "payload") {
		t.Errorf("filter answering in the trailers: %d %q, want 403", status, body)
	}
}

// TestRequestTrailersOverHTTP3: an HTTP/3 client's trailer section takes
// the same way.
func TestRequestTrailersOverHTTP3(t *testing.T) {
	listener, tlsConf := h3Listener(t, t.TempDir())
	e := startEdge(t, listener+`
`+trailerRoutes, "{{ORIGIN}}", trailerOrigin(t, false), "{{PROTO}}", "http1",
		"{{TEST}}", wasmtest.Build(t, "testfilter"))
	tr := &http3.Transport{TLSClientConfig: tlsConf}
	defer tr.Close()
	checkTrailers(t, "https://"+e.Node.Addrs()[0].String(), &http.Client{Transport: tr, Timeout: 5 * time.Second})
}

// TestRequestTrailersAfterTheResponseHead: an HTTP/2 origin answers
// before the request body is whole (as a bidirectional stream does); the
// body's trailer section, arriving after the response head, still reaches
// the origin, and no filter runs on it then (it would race the response
// phases): X-Sum-Seen is not added, X-Secret not removed.
func TestRequestTrailersAfterTheResponseHead(t *testing.T) {
	origin := serve(t, h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ack;")
		w.(http.Flusher).Flush()
		b, _ := io.ReadAll(r.Body)
		io.WriteString(w, string(b)+"|"+r.Trailer.Get("X-Sum")+"|"+r.Trailer.Get("X-Sum-Seen")+"|"+r.Trailer.Get("X-Secret"))
	}), &http2.Server{}))
	e := startEdge(t, trailerRoutes, "{{ORIGIN}}", origin, "{{PROTO}}", "h2c", "{{TEST}}", wasmtest.Build(t, "testfilter"))
	conn := dialRaw(t, strings.TrimPrefix(e.URL, "http://"))
	io.WriteString(conn, "POST /f/late HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-Sum, X-Secret, X-Sum-Seen\r\nConnection: close\r\n\r\n4\r\npart\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ack := make([]byte, 4)
	if _, err := io.ReadFull(resp.Body, ack); err != nil || string(ack) != "ack;" {
		t.Fatalf("first bytes %q, %v", ack, err)
	}
	// The head is here; the body's end and its trailers follow it.
	io.WriteString(conn, "0\r\nX-Sum: abc\r\nX-Secret: s\r\n\r\n")
	b, _ := io.ReadAll(resp.Body)
	if string(b) != "part|abc||s" {
		t.Fatalf("origin saw %q, want the trailers as sent (unfiltered)", b)
	}
}

// TestHTTP11ContentLengthBodyStaysFramedAsSent: an HTTP/1.1 request with
// a Content-Length cannot carry trailers, so a Trailer field it names
// neither reaches the origin nor makes the body chunked (an origin that
// refuses chunked uploads would answer 411).
func TestHTTP11ContentLengthBodyStaysFramedAsSent(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		fmt.Fprintf(w, "%s cl=%d te=%v trailer=%q", b, r.ContentLength, r.TransferEncoding, r.Header.Get("Trailer"))
	}))
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin)
	conn := dialRaw(t, strings.TrimPrefix(e.URL, "http://"))
	io.WriteString(conn, "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\nTrailer: X-Sum\r\n\r\npayload")
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if string(b) != `payload cl=7 te=[] trailer=""` {
		t.Fatalf("the origin saw %q", b)
	}
}

// TestRequestTrailersAfterABodyOfKnownLength: an HTTP/2 client that sends
// a Content-Length and then trailers has them reach an HTTP/1.1 origin,
// which the request reaches chunked (the one HTTP/1.1 framing with a
// trailer section).
func TestRequestTrailersAfterABodyOfKnownLength(t *testing.T) {
	origin := trailerOrigin(t, false)
	e := startEdge(t, trailerRoutes, "{{ORIGIN}}", origin, "{{PROTO}}", "http1", "{{TEST}}", wasmtest.Build(t, "testfilter"))
	h2 := &http.Client{Timeout: 5 * time.Second, Transport: &http2.Transport{AllowHTTP: true,
		DialTLS: func(n, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(n, a) }}}
	req, _ := http.NewRequest("POST", e.URL+"/p", strings.NewReader("payload"))
	req.ContentLength = 7
	req.Trailer = http.Header{"X-Sum": {"42"}}
	resp, err := h2.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || string(b) != "payload|x-sum=42" {
		t.Fatalf("%d %q, want the body and its trailer at the origin", resp.StatusCode, b)
	}
}
