package e2e

import (
	"crypto/tls"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"strings"
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
	dir := t.TempDir()
	cert, key, pool := writeCert(t, dir, "a", "a.example")
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    http3: true
    tls:
      certs:
        - {cert: "{{C}}", key: "{{K}}"}
`+oneRoute, "{{C}}", cert, "{{K}}", key, "{{ORIGIN}}", origin)
	addr := e.Node.Addrs()[0].String()
	port := addr[strings.LastIndex(addr, ":")+1:]
	tlsConf := &tls.Config{RootCAs: pool, ServerName: "a.example"}
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
	dir := b.TempDir()
	cert, key, pool := writeCert(t, dir, "a", "a.example")
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    http3: true
    tls:
      certs:
        - {cert: "{{C}}", key: "{{K}}"}
`+oneRoute, "{{C}}", cert, "{{K}}", key, "{{ORIGIN}}", benchOrigin(b))
	defer e.Shutdown(b.Context())
	tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "a.example"}}
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
	dir := t.TempDir()
	cert, key, pool := writeCert(t, dir, "a", "a.example")
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    http3: true
    tls:
      certs:
        - {cert: "{{C}}", key: "{{K}}"}
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
`, "{{C}}", cert, "{{K}}", key, "{{ORIGIN}}", origin)
	base := "https://" + e.Node.Addrs()[0].String()
	client := func() (*http.Client, func()) {
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "a.example"}}
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
