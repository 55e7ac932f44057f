package e2e

import (
	"crypto/tls"
	"net/http"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// TestStreamedHeadLeavesBeforeItsBody: an origin that sends a response
// head and then nothing (a server-sent events stream before its first
// event) has that head reach the client at once over HTTP/1.1, HTTP/2
// and HTTP/3: the edge does not hold it back for the first body bytes.
func TestStreamedHeadLeavesBeforeItsBody(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done() // no body byte until the client has gone
	}))
	listener, tlsConf := h3Listener(t, t.TempDir())
	e := startEdge(t, listener+`
`+oneRoute, "{{ORIGIN}}", origin)
	url := "https://" + e.Node.Addrs()[0].String() + "/events"
	h3 := &http3.Transport{TLSClientConfig: tlsConf}
	defer h3.Close()
	for _, tc := range []struct {
		proto string
		rt    http.RoundTripper
	}{
		{"HTTP/1.1", &http.Transport{TLSClientConfig: tlsConf, TLSNextProto: map[string]func(string, *tls.Conn) http.RoundTripper{}}},
		{"HTTP/2.0", &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}},
		{"HTTP/3.0", h3},
	} {
		t.Run(tc.proto, func(t *testing.T) {
			// The timeout covers the head only: the body is never read.
			c := &http.Client{Transport: tc.rt, Timeout: 10 * time.Second}
			resp, err := c.Get(url)
			if err != nil {
				t.Fatalf("the head did not come before the first body bytes: %v", err)
			}
			defer resp.Body.Close()
			if resp.Proto != tc.proto || resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
				t.Fatalf("%s %d %q", resp.Proto, resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			if r, ok := tc.rt.(interface{ CloseIdleConnections() }); ok {
				defer r.CloseIdleConnections()
			}
		})
	}
}
