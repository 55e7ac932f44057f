package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

const earlyHint = "</style.css>; rel=preload; as=style"

// hintingOrigin answers every request with 103 Early Hints carrying a Link
// field, then a cacheable 200 without it.
func hintingOrigin(t *testing.T) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", earlyHint)
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link") // net/http would send it again with the 200
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "final "+r.URL.Path)
	}))
}

// rawResponses sends a raw request and reads the responses it gets up to
// the final one, interim ones included.
func rawResponses(t *testing.T, addr, req string) []*http.Response {
	t.Helper()
	conn := dialRaw(t, addr)
	io.WriteString(conn, req)
	br := bufio.NewReader(conn)
	var out []*http.Response
	for range 4 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%q: %v", req, err)
		}
		out = append(out, resp)
		if resp.StatusCode >= 200 {
			io.ReadAll(resp.Body)
			return out
		}
	}
	t.Fatalf("%q: no final response", req)
	return nil
}

// RFC 9110 section 15.2 and RFC 8297: a proxy forwards the 1xx responses
// of an origin (103 Early Hints) to HTTP/1.1 clients, with its fields, and
// the final response keeps none of them; it sends none to an HTTP/1.0
// client; and a response served from the cache later does not replay it.
func TestRFC9110Section15_2EarlyHintsRelayedOverHTTP1(t *testing.T) {
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", hintingOrigin(t))
	addr := strings.TrimPrefix(e.URL, "http://")

	got := rawResponses(t, addr, "GET /page HTTP/1.1\r\nHost: x\r\nX-Outpost-Trace: 1\r\n\r\n")
	if len(got) != 2 || got[0].StatusCode != 103 || got[0].Header.Get("Link") != earlyHint {
		t.Fatalf("miss: got %d responses, first %d with Link %q; want 103 with %q, then 200",
			len(got), got[0].StatusCode, got[0].Header.Get("Link"), earlyHint)
	}
	final := got[1]
	if final.StatusCode != 200 || final.Header.Get("Link") != "" {
		t.Fatalf("final: %d with Link %q; want 200 without the 103's fields", final.StatusCode, final.Header.Get("Link"))
	}
	if tr := final.Header.Get("X-Outpost-Trace"); !strings.Contains(tr, "interim=103") {
		t.Errorf("trace %q does not record the relay", tr)
	}
	if via := got[0].Header.Get("Via"); !strings.Contains(via, "outpost") {
		t.Errorf("103 Via %q: the proxy adds itself to every message it forwards (RFC 9110 section 7.6.3)", via)
	}

	got = rawResponses(t, addr, "GET /page HTTP/1.1\r\nHost: x\r\n\r\n")
	if len(got) != 1 || got[0].StatusCode != 200 || !strings.Contains(got[0].Header.Get("Cache-Status"), "hit") {
		t.Fatalf("hit: got %d responses, first %d (%s); want one 200 from the cache, no 103 replayed",
			len(got), got[0].StatusCode, got[0].Header.Get("Cache-Status"))
	}

	got = rawResponses(t, addr, "GET /old HTTP/1.0\r\nHost: x\r\n\r\n")
	if len(got) != 1 || got[0].StatusCode != 200 {
		t.Fatalf("HTTP/1.0 client: got %d responses, first %d; want only the final 200 (RFC 9110 section 15.2)",
			len(got), got[0].StatusCode)
	}
}

// RFC 9110 section 15.2 over HTTP/2 (RFC 9113 section 8.1): the 103 arrives
// as a HEADERS frame of its own before the final response, which does not
// carry its fields. It is relayed on a pass as on a miss.
func TestRFC9110Section15_2EarlyHintsRelayedOverHTTP2(t *testing.T) {
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", hintingOrigin(t))
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, n, a)
		}}}
	for _, path := range []string{"/h2-miss", "/h2-pass"} {
		var interim []int
		var links []string
		trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
			interim = append(interim, code)
			links = append(links, h.Get("Link"))
			return nil
		}}
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.URL+path, nil)
		if path == "/h2-pass" {
			req.Header.Set("Cache-Control", "no-store")
		}
		resp, err := h2c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.StatusCode != 200 || string(b) != "final "+path {
			t.Fatalf("%s: HTTP/%d %d %q", path, resp.ProtoMajor, resp.StatusCode, b)
		}
		if len(interim) != 1 || interim[0] != 103 || links[0] != earlyHint {
			t.Errorf("%s: interim responses %v with Link %q; want one 103 with %q", path, interim, links, earlyHint)
		}
		if l := resp.Header.Get("Link"); l != "" {
			t.Errorf("%s: final response carries the 103's Link %q", path, l)
		}
	}
}

// scriptedOrigin answers each request read on a connection by writing
// answer as it is, and closes the connection when close is set.
func scriptedOrigin(t *testing.T, answer string, close bool) string {
	l := listen(t)
	go func() {
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					if _, err := io.WriteString(conn, answer); err != nil || close {
						return
					}
				}
			}()
		}
	}()
	return l.Addr().String()
}

// RFC 9110 sections 10.1.1 and 15.2: the proxy answers a client's
// "Expect: 100-continue" itself when it starts reading the body, and does
// not forward the expectation; an origin's own 100 Continue is not sent to
// the client a second time, while its 102 Processing is relayed.
func TestRFC9110Section15_2ContinueAnsweredOnceProcessingRelayed(t *testing.T) {
	origin := scriptedOrigin(t, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 102 Processing\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", false)
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin)
	conn := dialRaw(t, strings.TrimPrefix(e.URL, "http://"))
	io.WriteString(conn, "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 100 {
		t.Fatalf("before the body: %v %v, want the proxy's 100 Continue", resp, err)
	}
	io.WriteString(conn, "hello")
	var statuses []int
	for range 4 {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		statuses = append(statuses, resp.StatusCode)
		if resp.StatusCode >= 200 {
			break
		}
	}
	if len(statuses) != 2 || statuses[0] != 102 || statuses[1] != 200 {
		t.Fatalf("after the body: %v, want [102 200]: one 100 in all, the 102 relayed", statuses)
	}
}

// RFC 9110 section 15.2: a proxy does not forward the 1xx responses of a
// request it generated itself. A stale-while-revalidate refresh is the
// cache's own: its 103 reaches neither the client served stale, nor the
// next request on the same connection, in flight when the 103 comes.
func TestRFC9110Section15_2BackgroundRefreshRelaysNoInterim(t *testing.T) {
	var fetches atomicCount
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(600 * time.Millisecond)
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, "slow")
			return
		}
		if fetches.add() > 1 {
			time.Sleep(300 * time.Millisecond) // the refresh's 103 comes while /slow is in flight
		}
		w.Header().Set("Link", earlyHint)
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Del("Link")
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
		io.WriteString(w, "final")
	}))
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", origin)
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	br := bufio.NewReader(conn)
	exchange := func(path string) []int {
		io.WriteString(conn, "GET "+path+" HTTP/1.1\r\nHost: x\r\n\r\n")
		var statuses []int
		for range 4 {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.ReadAll(resp.Body)
			statuses = append(statuses, resp.StatusCode)
			if resp.StatusCode >= 200 {
				break
			}
		}
		return statuses
	}
	if got := exchange("/swr"); len(got) != 2 || got[0] != 103 {
		t.Fatalf("miss: %v, want [103 200]", got)
	}
	time.Sleep(1100 * time.Millisecond) // stale now
	if got := exchange("/swr"); len(got) != 1 || got[0] != 200 {
		t.Fatalf("stale hit: %v, want [200] alone", got)
	}
	if got := exchange("/slow"); len(got) != 1 || got[0] != 200 {
		t.Fatalf("next request on the connection: %v, want [200]: the refresh's 103 leaked into it", got)
	}
	if n := fetches.load(); n != 2 {
		t.Fatalf("origin fetched /swr %d times, want 2 (the miss and the refresh)", n)
	}
}

type atomicCount struct{ n atomic.Int64 }

func (c *atomicCount) add() int64  { return c.n.Add(1) }
func (c *atomicCount) load() int64 { return c.n.Load() }
