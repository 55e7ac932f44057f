package client

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/pool"
)

func TestRoundTripReadsResponseFromNetHTTPOrigin(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Header().Set("X-Host", r.Host)
		fmt.Fprint(w, "hello")
	}))
	defer srv.Close()
	tr := newTransport(t, pool.Config{})
	var resp httphead.Response
	body, err := get(t, tr, srv.Listener.Addr().String(), getRequest("/a?b=c"), &resp)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 200 || string(body) != "hello" || resp.Header.Get("X-Path") != "/a?b=c" || resp.Header.Get("X-Host") != "origin.test" {
		t.Errorf("got %d %q path=%q host=%q", resp.Status, body, resp.Header.Get("X-Path"), resp.Header.Get("X-Host"))
	}
}

func TestRoundTripFramesRequestBodies(t *testing.T) {
	type seen struct {
		cl, te, expect string
		body           string
		chunked        bool
	}
	got := make(chan seen, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Header.Get("Content-Length"), strings.Join(r.TransferEncoding, ","), r.Header.Get("Expect"), string(b), false}
	}))
	defer srv.Close()
	tests := []struct {
		name   string
		method string
		length int64
		body   io.Reader
		want   seen
	}{
		{"known length", "POST", 5, strings.NewReader("hello"), seen{cl: "5", body: "hello"}},
		{"unknown length is chunked", "POST", -1, strings.NewReader("streamed body"), seen{te: "chunked", body: "streamed body"}},
		{"no body on POST", "POST", 0, nil, seen{cl: "0"}},
		{"no body on GET", "GET", 0, nil, seen{}},
		{"stale framing replaced", "PUT", 3, strings.NewReader("abc"), seen{cl: "3", body: "abc"}},
	}
	tr := newTransport(t, pool.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := getRequest("/upload")
			req.SetLine([]byte(tt.method), []byte("/upload"), []byte("origin.test"), []byte("http"))
			req.ContentLength = tt.length
			req.Header.AddString("Content-Length", "999")
			req.Header.AddString("Transfer-Encoding", "gzip")
			req.Header.AddString("Expect", "100-continue")
			var resp httphead.Response
			b, err := tr.RoundTrip(context.Background(), srv.Listener.Addr().String(), req, tt.body, &resp)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, b)
			b.Close()
			if s := <-got; s != tt.want {
				t.Errorf("origin saw %+v, want %+v", s, tt.want)
			}
		})
	}
}

func TestRoundTripSendsOriginFormForAbsoluteTargets(t *testing.T) {
	got := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.RequestURI }))
	defer srv.Close()
	tr := newTransport(t, pool.Config{})
	for target, want := range map[string]string{"http://a.example/x?y=1": "/x?y=1", "http://a.example?q": "/?q", "http://a.example": "/"} {
		if _, err := get(t, tr, srv.Listener.Addr().String(), getRequest(target), &httphead.Response{}); err != nil {
			t.Fatal(err)
		}
		if uri := <-got; uri != want {
			t.Errorf("%s sent as %q, want %q", target, uri, want)
		}
	}
}

func TestSequentialKeepAliveRequestsReuseConnections(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	tr := newTransport(t, pool.Config{})
	addr := srv.Listener.Addr().String()
	req, resp := getRequest("/"), &httphead.Response{}
	const n = 10000
	for i := range n {
		if b, err := get(t, tr, addr, req, resp); err != nil || string(b) != "ok" {
			t.Fatalf("request %d: %q %v", i, b, err)
		}
	}
	s := tr.Pool.Totals()
	if s.Dials > 10 || s.Dials+s.Reuses != n {
		t.Errorf("%d dials and %d reuses for %d requests, want at most 10 dials", s.Dials, s.Reuses, n)
	}
}

func TestConcurrentRequestsDialAtMostOneConnectionPerWorker(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "ok") }))
	defer srv.Close()
	const workers, each = 32, 300
	tr := newTransport(t, pool.Config{MaxIdle: workers})
	addr := srv.Listener.Addr().String()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			req, resp := getRequest("/"), &httphead.Response{}
			for range each {
				if _, err := get(t, tr, addr, req, resp); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	s := tr.Pool.Totals()
	if s.Dials > workers || s.Dials+s.Reuses != workers*each {
		t.Errorf("%d dials, %d reuses; want at most %d dials", s.Dials, s.Reuses, workers)
	}
}

// oneShotOrigin answers the first request on each connection and then, on
// the next request, closes without answering: an origin that timed the
// idle connection out just as the request arrived.
func oneShotOrigin(t *testing.T) string {
	return rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		var req httphead.Request
		if _, err := readRequest(br, &req); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		readRequest(br, &req)
	})
}

func TestRoundTripRetriesIdempotentRequestOnClosedIdleConnection(t *testing.T) {
	addr := oneShotOrigin(t)
	tr := newTransport(t, pool.Config{})
	for i := range 3 {
		if b, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil || string(b) != "ok" {
			t.Fatalf("request %d: %q %v", i, b, err)
		}
	}
	if s := tr.Pool.Totals(); s.Dials != 3 {
		t.Errorf("%d dials, want one per request", s.Dials)
	}
}

// A GET on a connection the origin closed just after its last response
// is not peeked at (it was idle under peekAfter) and still succeeds: the
// failed exchange is retried on a new connection.
func TestGetOnAConnectionClosedAMomentAgoSucceeds(t *testing.T) {
	addr, closed := closingOrigin(t)
	tr := newTransport(t, pool.Config{})
	for i := range 3 {
		if b, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil || string(b) != "ok" {
			t.Fatalf("request %d: %q %v", i, b, err)
		}
		<-closed
	}
}

func TestRoundTripReportsButDoesNotRetryPOSTOnClosedIdleConnection(t *testing.T) {
	addr := oneShotOrigin(t)
	tr := newTransport(t, pool.Config{})
	if _, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil {
		t.Fatal(err)
	}
	req := getRequest("/")
	req.SetLine([]byte("POST"), []byte("/"), []byte("origin.test"), nil)
	_, err := tr.RoundTrip(context.Background(), addr, req, nil, &httphead.Response{})
	var e *Error
	if !errors.As(err, &e) {
		// The idle check saw the close first and dialled anew: nothing to report.
		if err != nil {
			t.Fatal(err)
		}
		t.Skip("origin close was seen before the request; retry path not reached")
	}
	if !e.Reused || !e.BeforeResponse || e.BeforeWrite || e.Op != OpReadHead {
		t.Errorf("error %+v, want a reused connection failing before the response", e)
	}
}

// closingOrigin answers one request per connection and closes it, saying
// so on closed.
func closingOrigin(t *testing.T) (string, <-chan struct{}) {
	closed := make(chan struct{}, 16)
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		var req httphead.Request
		if _, err := readRequest(br, &req); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed <- struct{}{}
	})
	return addr, closed
}

func TestIdleCheckSkipsConnectionsTheOriginClosed(t *testing.T) {
	addr, closed := closingOrigin(t)
	tr := newTransport(t, pool.Config{})
	if _, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil {
		t.Fatal(err)
	}
	<-closed
	c, _, err := tr.getConn(context.Background(), tr.key(addr), addr, false)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Pool.Discard(c.key, c)
	// The FIN may take a moment to arrive; poll with a deadline.
	for deadline := time.Now().Add(5 * time.Second); c.uses != 0 && time.Now().Before(deadline); {
		tr.Pool.Put(c.key, c)
		if c, _, err = tr.getConn(context.Background(), tr.key(addr), addr, false); err != nil {
			t.Fatal(err)
		}
	}
	if c.uses != 0 {
		t.Error("a connection closed by the origin was handed out again")
	}
}

func TestRoundTripErrorsFromMisbehavingOrigins(t *testing.T) {
	tests := []struct {
		name  string
		serve func(c net.Conn, br *bufio.Reader)
		check func(t *testing.T, err error)
	}{
		{"garbage head is a 502", func(c net.Conn, br *bufio.Reader) {
			readRequest(br, &httphead.Request{})
			io.WriteString(c, "garbage\r\n\r\n")
		}, func(t *testing.T, err error) {
			var he *h1.Error
			var e *Error
			if !errors.As(err, &he) || he.Status != 502 || !errors.As(err, &e) || e.Op != OpReadHead || e.BeforeResponse {
				t.Errorf("got %v", err)
			}
		}},
		{"ambiguous framing is a 502", func(c net.Conn, br *bufio.Reader) {
			readRequest(br, &httphead.Request{})
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
		}, func(t *testing.T, err error) {
			var he *h1.Error
			if !errors.As(err, &he) || he.Status != 502 {
				t.Errorf("got %v", err)
			}
		}},
		{"close before response", func(c net.Conn, br *bufio.Reader) {
			readRequest(br, &httphead.Request{})
		}, func(t *testing.T, err error) {
			var e *Error
			if !errors.As(err, &e) || !e.BeforeResponse || e.BeforeWrite || e.Reused {
				t.Errorf("got %+v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t, pool.Config{})
			_, err := get(t, tr, rawOrigin(t, tt.serve), getRequest("/"), &httphead.Response{})
			tt.check(t, err)
			if s := tr.Pool.Totals(); s.Active != 0 || s.Idle != 0 {
				t.Errorf("pool %+v after a failed exchange, want empty", s)
			}
		})
	}
}

func TestResetMidBodyFailsTheRead(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789")
		c.(*net.TCPConn).SetLinger(0) // close with RST
	})
	tr := newTransport(t, pool.Config{})
	_, err := get(t, tr, addr, getRequest("/"), &httphead.Response{})
	var e *Error
	if !errors.As(err, &e) || e.Op != OpReadBody {
		t.Fatalf("got %v, want a body read error", err)
	}
	if s := tr.Pool.Totals(); s.Active != 0 || s.Idle != 0 {
		t.Errorf("pool %+v, want the connection closed", s)
	}
}

func TestTimeouts(t *testing.T) {
	hang := func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		io.Copy(io.Discard, br) // until the client goes away
	}
	stall := func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
		io.Copy(io.Discard, br)
	}
	tests := []struct {
		name  string
		tr    *Transport
		serve func(net.Conn, *bufio.Reader)
		want  error
	}{
		{"connect", &Transport{ConnectTimeout: 20 * time.Millisecond, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			<-ctx.Done()
			return nil, ctx.Err()
		}}, hang, ErrConnectTimeout},
		{"first byte", &Transport{FirstByteTimeout: 20 * time.Millisecond}, hang, ErrFirstByteTimeout},
		{"idle body", &Transport{IdleTimeout: 20 * time.Millisecond}, stall, ErrIdleTimeout},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := tt.tr
			defer tr.Close()
			_, err := get(t, tr, rawOrigin(t, tt.serve), getRequest("/"), &httphead.Response{})
			if !errors.Is(err, tt.want) || !errors.Is(err, ErrTimeout) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestCancellingTheContextAbortsTheWait(t *testing.T) {
	received := make(chan struct{})
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		close(received)
		io.Copy(io.Discard, br)
	})
	tr := newTransport(t, pool.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-received; cancel() }()
	_, err := tr.RoundTrip(ctx, addr, getRequest("/"), nil, &httphead.Response{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

func TestCancellingTheContextAbortsABodyRead(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n01234")
		io.Copy(io.Discard, br) // the rest never comes
	})
	tr := newTransport(t, pool.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	body, err := tr.RoundTrip(ctx, addr, getRequest("/"), nil, &httphead.Response{})
	if err != nil {
		t.Fatal(err)
	}
	defer body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(body, buf); err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() { _, err := body.Read(buf); read <- err }()
	cancel()
	select {
	case err := <-read:
		var e *Error
		if !errors.As(err, &e) || e.Op != OpReadBody || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v, want a body read error wrapping context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the body read did not end with the context")
	}
	if s := tr.Pool.Totals(); s.Active != 0 || s.Idle != 0 {
		t.Errorf("pool %+v, want the connection closed", s)
	}
}

func TestBodyReadAfterTheExchangeKeepsTheConnectionWhenTheContextEndsLater(t *testing.T) {
	addr := keepAliveOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
	tr := newTransport(t, pool.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	body, err := tr.RoundTrip(ctx, addr, getRequest("/"), nil, &httphead.Response{})
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(body); err != nil || string(b) != "0123456789" {
		t.Fatalf("body %q, %v", b, err)
	}
	cancel() // after the body ended: must not touch the pooled connection
	if _, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil {
		t.Fatal(err)
	}
	if s := tr.Pool.Totals(); s.Dials != 1 {
		t.Errorf("pool %+v, want the connection reused", s)
	}
}

func TestClosingBodyEarlyClosesTheConnection(t *testing.T) {
	addr := keepAliveOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
	tr := newTransport(t, pool.Config{})
	body, err := tr.RoundTrip(context.Background(), addr, getRequest("/"), nil, &httphead.Response{})
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 3)
	io.ReadFull(body, buf)
	body.Close()
	if _, err := body.Read(buf); err == nil {
		t.Error("read after Close succeeded")
	}
	if s := tr.Pool.Totals(); s.Active != 0 || s.Idle != 0 {
		t.Errorf("pool %+v, want the connection closed", s)
	}
	if _, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil {
		t.Fatal(err)
	}
	if s := tr.Pool.Totals(); s.Dials != 2 || s.Idle != 1 {
		t.Errorf("pool %+v, want a second dial kept idle", s)
	}
}

func TestResponseFramings(t *testing.T) {
	tests := []struct {
		name     string
		resp     string
		body     string
		trailers int
		reused   bool
	}{
		{"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", "abc", 0, true},
		{"chunked with trailers", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", "abc", 1, true},
		{"interim responses skipped", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n", "", 0, true},
		{"connection close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 3\r\n\r\nabc", "abc", 0, false},
		{"HTTP/1.0", "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nabc", "abc", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := newTransport(t, pool.Config{})
			addr := keepAliveOrigin(t, tt.resp)
			body, err := tr.RoundTrip(context.Background(), addr, getRequest("/"), nil, &httphead.Response{})
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(body)
			if err != nil || string(b) != tt.body {
				t.Fatalf("body %q %v", b, err)
			}
			if bb, ok := body.(*Body); ok && bb.Trailers().Len() != tt.trailers {
				t.Errorf("%d trailers, want %d", bb.Trailers().Len(), tt.trailers)
			}
			body.Close()
			if idle := tr.Pool.Totals().Idle; (idle == 1) != tt.reused {
				t.Errorf("%d idle connections, want reuse=%v", idle, tt.reused)
			}
		})
	}
}

func TestCloseDelimitedResponseIsReadToTheEnd(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		io.WriteString(c, "HTTP/1.1 200 OK\r\n\r\nuntil the end")
	})
	tr := newTransport(t, pool.Config{})
	b, err := get(t, tr, addr, getRequest("/"), &httphead.Response{})
	if err != nil || string(b) != "until the end" {
		t.Fatalf("%q %v", b, err)
	}
	if s := tr.Pool.Totals(); s.Idle != 0 || s.Active != 0 {
		t.Errorf("pool %+v, want the connection closed", s)
	}
}

func TestSwitchingProtocolsHandsOverTheConnection(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		readRequest(br, &httphead.Request{})
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nhi ")
		io.Copy(c, br) // echo
	})
	tr := newTransport(t, pool.Config{})
	req := getRequest("/ws")
	req.Header.AddString("Connection", "Upgrade")
	req.Header.AddString("Upgrade", "echo")
	var resp httphead.Response
	body, err := tr.RoundTrip(context.Background(), addr, req, nil, &resp)
	if err != nil || resp.Status != 101 {
		t.Fatalf("%d %v", resp.Status, err)
	}
	up, ok := body.(*Upgraded)
	if !ok {
		t.Fatalf("body is %T, want *Upgraded", body)
	}
	defer up.Close()
	up.Write([]byte("there"))
	got := make([]byte, len("hi there"))
	if _, err := io.ReadFull(up, got); err != nil || string(got) != "hi there" {
		t.Fatalf("%q %v", got, err)
	}
	if s := tr.Pool.Totals(); s.Active != 0 || s.Idle != 0 {
		t.Errorf("pool %+v, want the upgraded connection out of it", s)
	}
}

func TestTLSUsesSNIAndVerifies(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "secure") }))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	addr := srv.Listener.Addr().String()

	tr := newTransport(t, pool.Config{})
	tr.TLS = &tls.Config{RootCAs: roots, ServerName: "example.com"}
	for range 3 {
		if b, err := get(t, tr, addr, getRequest("/"), &httphead.Response{}); err != nil || string(b) != "secure" {
			t.Fatalf("%q %v", b, err)
		}
	}
	if sni.Load() != "example.com" {
		t.Errorf("SNI %q, want example.com", sni.Load())
	}
	if s := tr.Pool.Totals(); s.Dials != 1 {
		t.Errorf("%d TLS dials for 3 requests, want 1", s.Dials)
	}

	untrusting := newTransport(t, pool.Config{})
	untrusting.TLS = &tls.Config{ServerName: "example.com"}
	_, err := get(t, untrusting, addr, getRequest("/"), &httphead.Response{})
	var e *Error
	if !errors.As(err, &e) || e.Op != OpConnect || !e.BeforeWrite {
		t.Errorf("unverifiable origin: got %v, want a connect error", err)
	}
}

func TestRefusedConnectionIsAConnectError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	tr := newTransport(t, pool.Config{})
	_, err := get(t, tr, addr, getRequest("/"), &httphead.Response{})
	var e *Error
	if !errors.As(err, &e) || e.Op != OpConnect || !e.BeforeWrite || errors.Is(err, ErrTimeout) {
		t.Fatalf("got %v", err)
	}
}

func TestRequestBodyErrorIsBlamedOnTheBody(t *testing.T) {
	addr := keepAliveOrigin(t, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
	tr := newTransport(t, pool.Config{})
	req := getRequest("/")
	req.SetLine([]byte("POST"), []byte("/"), []byte("origin.test"), nil)
	req.ContentLength = 10
	boom := errors.New("client went away")
	_, err := tr.RoundTrip(context.Background(), addr, req, io.MultiReader(strings.NewReader("abc"), errReader{boom}), &httphead.Response{})
	var e *Error
	if !errors.As(err, &e) || e.Op != OpRequestBody || !errors.Is(err, boom) {
		t.Fatalf("got %v", err)
	}
	req.ContentLength = 10
	_, err = tr.RoundTrip(context.Background(), addr, req, bytes.NewReader([]byte("short")), &httphead.Response{})
	if !errors.Is(err, ErrShortBody) {
		t.Fatalf("got %v, want ErrShortBody", err)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func TestEarlyResponseToAnUploadIsReturned(t *testing.T) {
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		h1.ReadRequest(br, &httphead.Request{}, nil, h1.Limits{})
		io.WriteString(c, "HTTP/1.1 413 Content Too Large\r\nContent-Length: 8\r\n\r\ntoo big!")
		c.(*net.TCPConn).CloseWrite()
		// Drain briefly so the response is not lost to a reset, then close.
		c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		io.CopyN(io.Discard, br, 1<<20)
	})
	tr := newTransport(t, pool.Config{})
	req := getRequest("/upload")
	req.SetLine([]byte("PUT"), []byte("/upload"), []byte("origin.test"), nil)
	req.ContentLength = 64 << 20
	var resp httphead.Response
	body, err := tr.RoundTrip(context.Background(), addr, req, io.LimitReader(zeros{}, 64<<20), &resp)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(body)
	body.Close()
	if resp.Status != 413 || string(b) != "too big!" {
		t.Errorf("got %d %q", resp.Status, b)
	}
	if s := tr.Pool.Totals(); s.Idle != 0 {
		t.Errorf("pool %+v: a half-sent connection was kept", s)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }
