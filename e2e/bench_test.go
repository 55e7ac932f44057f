package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2"
)

// rawClient is a keep-alive HTTP/1.1 client that allocates nothing per
// request, so a benchmark's allocs/op are the server's.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
	body []byte
	last int // body length of the last response
}

func newRawClient(b *testing.B, addr, path string) *rawClient {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	return &rawClient{conn: conn, br: bufio.NewReaderSize(conn, 64<<10),
		req: []byte("GET " + path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"), body: make([]byte, 64<<10)}
}

var contentLength = []byte("content-length: ")

// do sends the request and reads one response; it returns the status.
func (c *rawClient) do(b *testing.B) int {
	if _, err := c.conn.Write(c.req); err != nil {
		b.Fatal(err)
	}
	status, length := 0, -1
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if status == 0 {
			status, _ = strconv.Atoi(string(line[9:12]))
			continue
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(line[len(contentLength):])))
		}
	}
	if length < 0 {
		b.Fatal("no Content-Length")
	}
	c.last = length
	if _, err := io.ReadFull(c.br, c.body[:length]); err != nil {
		b.Fatal(err)
	}
	return status
}

func benchOrigin(b *testing.B) string {
	body := strings.Repeat("x", 1024)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/nocache") {
			w.Header().Set("Cache-Control", "no-store")
		} else {
			w.Header().Set("Cache-Control", "public, max-age=3600")
		}
		io.WriteString(w, body)
	})}
	go s.Serve(l)
	b.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

// BenchmarkHit1K is a cache hit of a 1 KiB object over HTTP/1.1 keep-alive,
// server and client in one process: allocs/op are the server's.
func BenchmarkHit1K(b *testing.B) { benchPath(b, "/obj") }

// BenchmarkPass1K is a pass-through request to the origin (no-store).
func BenchmarkPass1K(b *testing.B) { benchPath(b, "/nocache") }

func benchPath(b *testing.B, path string) {
	e := startEdge(&testing.T{}, oneRoute, "{{ORIGIN}}", benchOrigin(b))
	defer e.Shutdown(b.Context())
	c := newRawClient(b, strings.TrimPrefix(e.URL, "http://"), path)
	defer c.conn.Close()
	c.do(b) // fill the cache
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st := c.do(b); st != 200 {
			b.Fatalf("status %d", st)
		}
	}
}

// BenchmarkHitH2C is a cache hit over cleartext HTTP/2, 4 streams at a
// time on one connection (allocs/op include the Go client's).
func BenchmarkHitH2C(b *testing.B) {
	e := startEdge(&testing.T{}, oneRoute, "{{ORIGIN}}", benchOrigin(b))
	defer e.Shutdown(b.Context())
	c := &http.Client{Transport: &http2.Transport{AllowHTTP: true, DialTLS: func(n, a string, _ *tls.Config) (net.Conn, error) { return net.Dial(n, a) }}}
	url := e.URL + "/obj"
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
	b.SetParallelism(2)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			fetch()
		}
	})
}
