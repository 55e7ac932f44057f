package e2e

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// zeros is an endless reader of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// heapPeak samples the heap until stop is called, which returns the
// largest HeapInuse seen.
func heapPeak() (stop func() uint64) {
	var peak atomic.Uint64
	done := make(chan struct{})
	go func() {
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peak.Load() {
				peak.Store(m.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() uint64 { close(done); return peak.Load() }
}

// HTTP/3 through the real node: a cache hit, a miss streamed as the
// origin sends it, 100 MiB down and up in bounded memory, and Alt-Svc on
// the TCP listener's responses pointing at it.
func TestHTTP3HitsMissesAndLargeBodiesInBoundedMemory(t *testing.T) {
	const size = 100 << 20
	var objHits atomic.Int64
	release := make(chan struct{})
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/obj":
			objHits.Add(1)
			w.Header().Set("Cache-Control", "max-age=3600")
			io.WriteString(w, strings.Repeat("x", 1024))
		case "/stream":
			w.Header().Set("Cache-Control", "no-store")
			io.WriteString(w, "first ")
			w.(http.Flusher).Flush()
			<-release
			io.WriteString(w, "second")
		case "/big":
			w.Header().Set("Cache-Control", "no-store")
			w.Header().Set("Content-Length", strconv.Itoa(size))
			io.Copy(w, io.LimitReader(zeros{}, size))
		case "/up":
			n, _ := io.Copy(io.Discard, r.Body)
			io.WriteString(w, strconv.FormatInt(n, 10))
		}
	}))
	listener, tlsConf := h3Listener(t, t.TempDir())
	e := startEdge(t, listener+`
`+oneRoute, "{{ORIGIN}}", origin)
	addr := e.Node.Addrs()[0].String()
	port := addr[strings.LastIndex(addr, ":")+1:]
	tr := &http3.Transport{TLSClientConfig: tlsConf}
	defer tr.Close()
	c := &http.Client{Transport: tr, Timeout: 60 * time.Second}
	base := "https://" + addr

	// Alt-Svc over TCP (HTTP/2 here) names the HTTP/3 port.
	tcp := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf, ForceAttemptHTTP2: true}}
	resp, err := tcp.Get(base + "/obj")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if got, want := resp.Header.Get("Alt-Svc"), `h3=":`+port+`"; ma=86400`; got != want {
		t.Fatalf("Alt-Svc over %s: %q, want %q", resp.Proto, got, want)
	}

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s over HTTP/3: %v", path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.ProtoMajor != 3 {
			t.Fatalf("GET %s: %s, %v", path, resp.Proto, err)
		}
		return resp, string(b)
	}
	if _, b := get("/obj"); len(b) != 1024 || objHits.Load() != 1 {
		t.Fatalf("hit over HTTP/3: %d bytes, origin asked %d times (want 1: the TCP request filled the cache)", len(b), objHits.Load())
	}

	// A miss reaches the client as the origin sends it.
	resp, err = c.Get(base + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	first := make([]byte, len("first "))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first " {
		t.Fatalf("first part before the origin finished: %q %v", first, err)
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(rest) != "second" {
		t.Fatalf("rest %q", rest)
	}

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	stop := heapPeak()
	resp, err = c.Get(base + "/big")
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || n != size {
		t.Fatalf("download: %d bytes, %v", n, err)
	}
	resp, err = c.Post(base+"/up", "application/octet-stream", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != strconv.Itoa(size) {
		t.Fatalf("upload: origin read %q bytes", b)
	}
	growth := int64(stop()) - int64(before.HeapInuse)
	t.Logf("100 MiB down and up over HTTP/3: heap grew by at most %d MiB", growth>>20)
	if growth > 64<<20 {
		t.Fatalf("heap grew by %d MiB moving 100 MiB each way: bodies are buffered", growth>>20)
	}
}

// BenchmarkHit1KH3 is a cache hit of a 1 KiB object over HTTP/3, one
// request at a time on one QUIC connection, with quic-go's client in the
// same process (its costs are in the figures).
func BenchmarkHit1KH3(b *testing.B) {
	t := &testing.T{}
	listener, tlsConf := h3Listener(t, b.TempDir())
	e := startEdge(t, listener+`
`+oneRoute, "{{ORIGIN}}", benchOrigin(b))
	defer e.Shutdown(b.Context())
	tr := &http3.Transport{TLSClientConfig: tlsConf}
	defer tr.Close()
	c := &http.Client{Transport: tr}
	url := "https://" + e.Node.Addrs()[0].String() + "/obj"
	fetch := func() {
		resp, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	fetch()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		fetch()
	}
}

// Over HTTP/3 the protection layer sees the client as over TCP: its JA4
// is computed from the QUIC ClientHello ("q" first) and reaches rules and
// the origin, and limits.max_conns_per_ip counts QUIC connections.
func TestHTTP3FingerprintAndConnectionLimits(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ja4="+r.Header.Get("X-JA4"))
	}))
	listener, tlsConf := h3Listener(t, t.TempDir())
	e := startEdge(t, listener+`
limits:
  max_conns_per_ip: 1
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: all
    upstream: origin
    cache: {enabled: false}
protection:
  fingerprint_headers: true
  rules:
    - {name: no-quic, ja4: ["q*"], path_prefixes: [/tcp-only/], action: deny}
`, "{{ORIGIN}}", origin)
	base := "https://" + e.Node.Addrs()[0].String()
	client := func() (*http.Client, func()) {
		tr := &http3.Transport{TLSClientConfig: tlsConf}
		return &http.Client{Transport: tr, Timeout: 5 * time.Second}, func() { tr.Close() }
	}
	c, done := client()
	defer done()
	resp, err := c.Get(base + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasPrefix(string(b), "ja4=q13d") {
		t.Fatalf("origin saw %q, want the QUIC ClientHello's JA4", b)
	}
	if resp, err := c.Get(base + "/tcp-only/x"); err != nil || resp.StatusCode != 403 {
		t.Fatalf("a JA4 rule for QUIC clients: %v %v, want 403", resp, err)
	}
	// A second connection from the same address is over the limit.
	c2, done2 := client()
	defer done2()
	if resp, err := c2.Get(base + "/x"); err == nil {
		resp.Body.Close()
		t.Fatalf("second QUIC connection from one address served (%d) with max_conns_per_ip: 1", resp.StatusCode)
	}
}

// RFC 8470: requests in HTTP/3 0-RTT early data are served only with a
// safe method on a route that accepts early data; any other gets 425 Too
// Early, and without early_data anywhere the listener takes no 0-RTT.
func TestRFC8470EarlyDataOnlyForSafeMethodsOnRoutesThatAllowIt(t *testing.T) {
	var seen atomic.Int64
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.Add(1)
		io.WriteString(w, "ok")
	}))
	listener, tlsConf := h3Listener(t, t.TempDir())
	e := startEdge(t, listener+`
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: early
    match: {path_prefix: /early/}
    upstream: origin
    early_data: true
  - name: rest
    upstream: origin
`, "{{ORIGIN}}", origin)
	// The client's handshake completion is held back, as on a real
	// network: its early requests reach the server before the handshake
	// ends (on loopback the handshake would win the race).
	base := "https://" + slowHandshakeRelay(t, e.Node.Addrs()[0].String())
	tlsConf.ClientSessionCache = tls.NewLRUClientSessionCache(8)
	// A first connection leaves a session ticket that allows 0-RTT.
	tr := &http3.Transport{TLSClientConfig: tlsConf}
	if resp, err := (&http.Client{Transport: tr}).Get(base + "/early/warm"); err != nil {
		t.Fatal(err)
	} else {
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	time.Sleep(relayHold + 500*time.Millisecond) // the ticket follows the handshake
	tr.Close()
	for _, tc := range []struct {
		path   string
		status int
	}{{"/early/x", 200}, {"/other", 425}} {
		tr := &http3.Transport{TLSClientConfig: tlsConf}
		req, _ := http.NewRequest(http3.MethodGet0RTT, base+tc.path, nil)
		resp, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s in 0-RTT: %v", tc.path, err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
		// The early answer can beat the held-back handshake: let the
		// handshake end, so that the new session ticket is kept for the
		// next case, before closing.
		time.Sleep(relayHold + 500*time.Millisecond)
		tr.Close()
		if resp.StatusCode != tc.status {
			t.Errorf("GET %s in 0-RTT: %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
	if n := seen.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (the warm-up and the early GET the route allows)", n)
	}
}

// relayHold is how long slowHandshakeRelay holds a client's Handshake and
// 1-RTT packets: longer than a loaded machine may take to serve the early
// request.
const relayHold = 2 * time.Second

// slowHandshakeRelay relays UDP between clients and the QUIC server at
// addr, holding each client datagram that starts with a Handshake or a
// 1-RTT packet for relayHold: Initial and 0-RTT packets pass at once.
func slowHandshakeRelay(t *testing.T, addr string) string {
	server, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close() })
	var mu sync.Mutex
	backs := map[string]*net.UDPConn{}
	go func() {
		buf := make([]byte, 65536)
		for {
			n, client, err := front.ReadFromUDP(buf)
			if err != nil {
				return
			}
			mu.Lock()
			back := backs[client.String()]
			if back == nil {
				if back, err = net.DialUDP("udp", nil, server); err != nil {
					mu.Unlock()
					return
				}
				backs[client.String()] = back
				t.Cleanup(func() { back.Close() })
				go func() { // server to client, at once
					b := make([]byte, 65536)
					for {
						n, err := back.Read(b)
						if err != nil {
							return
						}
						front.WriteToUDP(b[:n], client)
					}
				}()
			}
			mu.Unlock()
			pkt := append([]byte(nil), buf[:n]...)
			longHeader, typ := pkt[0]&0x80 != 0, pkt[0]>>4&0x3
			if longHeader && (typ == 0 || typ == 1) { // Initial, 0-RTT
				back.Write(pkt)
				continue
			}
			time.AfterFunc(relayHold, func() { back.Write(pkt) })
		}
	}()
	return front.LocalAddr().String()
}

// h3Listener is the listeners block of an edge serving HTTP/3 (and TLS
// over TCP) for a.example, its certificate written into dir, and the
// client TLS settings that trust it.
func h3Listener(t *testing.T, dir string) (string, *tls.Config) {
	cert, key, pool := writeCert(t, dir, "a", "a.example")
	return fmt.Sprintf(`
listeners:
  - addr: 127.0.0.1:0
    http3: true
    tls:
      certs:
        - {cert: %q, key: %q}
`, cert, key), &tls.Config{RootCAs: pool, ServerName: "a.example"}
}
