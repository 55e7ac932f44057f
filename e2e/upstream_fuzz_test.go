package e2e

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
)

// fuzzReceived is what the fuzz origin read on one upstream connection.
type fuzzReceived struct {
	req      *http.Request
	body     []byte
	err      error // net/http could not read the request or its body
	leftover int   // bytes after the request, before the origin answered
}

// fuzzOrigin answers every request with "Connection: close", after
// reading it with net/http and looking for bytes beyond it.
func fuzzOrigin(t testing.TB) (addr string, got chan fuzzReceived) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	got = make(chan fuzzReceived, 16)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go fuzzServe(c, got)
		}
	}()
	return l.Addr().String(), got
}

func fuzzServe(c net.Conn, got chan<- fuzzReceived) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var rec fuzzReceived
	rec.req, rec.err = http.ReadRequest(br)
	if rec.err == nil {
		rec.body, rec.err = io.ReadAll(rec.req.Body)
	}
	if rec.err == nil {
		// Whatever follows the declared body is a second request the
		// origin would read (smuggled); the proxy sent it in the same
		// writes, so it is here within a millisecond.
		c.SetReadDeadline(time.Now().Add(time.Millisecond))
		more, _ := br.Peek(1)
		rec.leftover = br.Buffered() + len(more)
		c.SetDeadline(time.Now().Add(5 * time.Second))
	}
	select {
	case got <- rec:
	default: // a fuzz case is already failing
	}
	if rec.err == nil {
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	}
}

// fuzzFirstRequest reads the first request of data with the HTTP/1.1
// codec and returns it, its decoded body and its length in data; ok is
// false when the codec refuses it or it is not whole.
func fuzzFirstRequest(data []byte) (req *httphead.Request, body []byte, n int, ok bool) {
	rd := bytes.NewReader(data)
	br := bufio.NewReader(rd)
	req = &httphead.Request{}
	if h1.ReadRequest(br, req, []byte("http"), h1.Limits{}) != nil {
		return nil, nil, 0, false
	}
	var b h1.BodyReader
	b.Reset(br, req.ContentLength, req.Chunked)
	body, err := io.ReadAll(&b)
	if err != nil {
		return nil, nil, 0, false
	}
	return req, body, len(data) - rd.Len() - br.Buffered(), true
}

// fuzzNotCompared are fields the proxy removes, replaces or adds by design:
// hop-by-hop and framing fields, Host, the forwarding fields it sets and
// the unkeyed fields proxy.strip_request_headers removes by default.
var fuzzNotCompared = []string{
	"Connection", "Keep-Alive", "Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade",
	"Proxy-Authenticate", "Proxy-Authorization", "Http2-Settings", "Content-Length", "Host", "Expect",
	"Forwarded", "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Via", "X-Request-Id", "X-Outpost-Trace",
	"X-Original-Url", "X-Rewrite-Url", "X-Http-Method-Override", "X-Http-Method", "X-Method-Override",
	"X-Forwarded-Port", "X-Forwarded-Scheme", "X-Forwarded-Server", "X-Forwarded-Ssl", "X-Host", "X-Original-Host",
	"Front-End-Https",
}

// fuzzSeeds are requests worth starting from: smuggling attempts, folded
// and odd fields, dot-segments, absolute-form targets, chunked bodies.
var fuzzSeeds = []string{
	"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /a/b?c=d&e HTTP/1.1\r\nHost: a\r\nAccept: */*\r\nCookie: x=1\r\nCookie: y=2\r\n\r\n",
	"GET /a/../b/./c//d/%2e%2e/%61 HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET /x%2fy%2F..%2f?q=%2e HTTP/1.1\r\nHost: a\r\n\r\n",
	"GET http://a.example/abs?q=1 HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"GET HTTP://A.EXAMPLE.:80/abs HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG",
	"POST /p HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n\r\n0\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
	"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nX-A:  \t padded \t \r\nX-Empty:\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-Hop, close\r\nX-Hop: 1\r\nTE: trailers\r\nUpgrade: h2c\r\n\r\n",
	"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
	"HEAD /h HTTP/1.1\r\nHost: a\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
	"DELETE /d HTTP/1.1\r\nHost: a\r\nX-HTTP-Method-Override: PUT\r\nX-Original-URL: /admin\r\n\r\n",
	"GET /a;b=c/%7Euser HTTP/1.1\r\nHost: A.Example.:80\r\nX-Forwarded-For: 1.2.3.4\r\nVia: 1.1 other\r\n\r\n",
	"PUT /u HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
}

func FuzzUpstreamRequest(f *testing.F) {
	for _, s := range fuzzSeeds {
		f.Add([]byte(s))
	}
	originAddr, got := fuzzOrigin(f)
	e := startEdge(f, `
timeouts: {header: 2s, body_read: 2s}
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    connect_timeout: 1s
    first_byte_timeout: 2s
    retries: {max: 0}
routes:
  - name: all
    upstream: origin
    cache: {enabled: false}
`, "{{ORIGIN}}", originAddr)
	edgeAddr := strings.TrimPrefix(e.URL, "http://")
	f.Fuzz(func(t *testing.T, data []byte) {
		req, body, n, ok := fuzzFirstRequest(data)
		if !ok || req.IsMethod("CONNECT") || req.Header.Has("Upgrade") {
			return // refused, cut short, or a tunnel: nothing to compare
		}
		for len(got) > 0 {
			<-got // left by an earlier case that failed
		}
		status := fuzzSend(t, edgeAddr, data[:n])
		var recs []fuzzReceived
		for done := false; !done; {
			select {
			case r := <-got:
				recs = append(recs, r)
			case <-time.After(5 * time.Millisecond):
				done = true
			}
		}
		if len(recs) == 0 {
			if status == 200 {
				t.Fatalf("answered 200 without reaching the origin")
			}
			return // the server refused it
		}
		if len(recs) > 1 {
			t.Fatalf("one request became %d upstream", len(recs))
		}
		fuzzCompare(t, req, body, recs[0])
	})
}

// fuzzSend writes raw to the edge, ends the write side and returns the
// response status, or 0.
func fuzzSend(t *testing.T, addr string, raw []byte) int {
	conn := dialRaw(t, addr)
	conn.Write(raw)
	conn.(*net.TCPConn).CloseWrite()
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// fuzzCompare checks what the origin received against the client's request.
func fuzzCompare(t *testing.T, req *httphead.Request, body []byte, rec fuzzReceived) {
	t.Helper()
	if rec.err != nil {
		t.Fatalf("net/http cannot read what went upstream: %v", rec.err)
	}
	if rec.leftover > 0 {
		t.Fatalf("%d bytes followed the request upstream", rec.leftover)
	}
	r := rec.req
	if r.Method != string(req.Method) {
		t.Errorf("method %q upstream, %q sent", r.Method, req.Method)
	}
	if want := string(req.ForwardTarget(nil)); r.RequestURI != want {
		t.Errorf("target %q upstream, want the normalised %q (sent %q)", r.RequestURI, want, req.Target)
	}
	if !bytes.Equal(rec.body, body) {
		t.Errorf("body %q upstream, %q sent", rec.body, body)
	}
	sent := http.Header{}
	for i := range req.Header.Len() {
		name, value := req.Header.Field(i)
		sent.Add(string(name), string(value))
	}
	skip := func(name string) bool {
		return slices.Contains(fuzzNotCompared, name) || req.Header.HasToken("Connection", name)
	}
	for name, values := range sent {
		if !skip(name) && !slices.Equal(values, r.Header[name]) {
			t.Errorf("field %s: %q upstream, %q sent", name, r.Header[name], values)
		}
	}
	for name, values := range r.Header {
		if !skip(name) && sent[name] == nil {
			t.Errorf("field %s: %q upstream, not sent", name, values)
		}
	}
}
