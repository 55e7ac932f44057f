package e2e

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// RFC 9112 sections 6.1 and 6.3 (item 4): a response whose final transfer
// coding is not chunked, and an unknown one at that, has a body that runs
// until the origin closes. The proxy relays it to an HTTP/1.1 client still
// coded, naming the coding before its own chunked framing; it never stores
// it; and it answers 502 to clients whose protocol has no transfer codings
// (HTTP/1.0, HTTP/2), who would take the coded bytes for the content.
func TestRFC9112Section6_3UnknownTransferCodingRelayedToClose(t *testing.T) {
	const coded = "\x00\x01opaque coded bytes\r\n0\r\n\r\n"
	origin := scriptedOrigin(t, "HTTP/1.1 200 OK\r\nTransfer-Encoding: x-custom\r\nCache-Control: max-age=60\r\n\r\n"+coded, true)
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", origin)
	addr := strings.TrimPrefix(e.URL, "http://")

	for i := range 2 { // the second is not a hit: nothing was stored
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(conn, "GET /coded HTTP/1.1\r\nHost: x\r\nX-Outpost-Trace: 1\r\n\r\n")
		tp := textproto.NewReader(bufio.NewReader(conn))
		status, _ := tp.ReadLine()
		head, err := tp.ReadMIMEHeader()
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(httputil.NewChunkedReader(tp.R))
		conn.Close()
		if !strings.HasPrefix(status, "HTTP/1.1 200") || head.Get("Transfer-Encoding") != "x-custom, chunked" ||
			head.Get("Content-Length") != "" || err != nil || string(body) != coded {
			t.Fatalf("request %d: %q, Transfer-Encoding %q, body %q (%v); want 200, \"x-custom, chunked\" and the coded bytes",
				i, status, head.Get("Transfer-Encoding"), body, err)
		}
		if tr := head.Get("X-Outpost-Trace"); !strings.Contains(tr, "not stored: transfer-coded") {
			t.Fatalf("request %d: trace %q, want the response not stored", i, tr)
		}
	}

	got := rawResponses(t, addr, "GET /coded HTTP/1.0\r\nHost: x\r\n\r\n")
	if got[0].StatusCode != 502 {
		t.Errorf("HTTP/1.0 client: %d, want 502 (it cannot receive Transfer-Encoding)", got[0].StatusCode)
	}
	h2c := &http.Client{Transport: &http2.Transport{AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, n, a string, _ *tls.Config) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, n, a)
		}}}
	// The engine resets an HTTP/2 stream after any 5xx it answers, so the
	// client may see the reset rather than the 502: either way, no body.
	resp, err := h2c.Get(e.URL + "/coded")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Errorf("HTTP/2 client: %d %q, want 502 (HTTP/2 has no transfer codings)", resp.StatusCode, b)
		}
	}
}
