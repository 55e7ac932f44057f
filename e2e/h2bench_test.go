package e2e

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/h2c"
	"golang.org/x/net/http2/hpack"
)

// rawH2Client is an HTTP/2 client with prior knowledge that allocates
// nothing per request: one stream at a time, a request head encoded once,
// frames read by hand. A benchmark's allocs/op are then the server's.
type rawH2Client struct {
	conn  net.Conn
	br    *bufio.Reader
	req   []byte // a HEADERS frame, stream id patched per request
	id    uint32
	recvd int // DATA bytes since the last connection WINDOW_UPDATE
}

func newRawH2Client(b *testing.B, addr, path string) *rawH2Client {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	// The first request adds the fields to the HPACK dynamic table, as
	// browsers and h2load do; from the second on, the same block refers
	// to them by index.
	var first, block bytes.Buffer
	enc := hpack.NewEncoder(&first)
	fields := [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "bench"}, {":path", path}, {"user-agent", "bench"}, {"accept", "*/*"}}
	for _, f := range fields {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	enc = hpack.NewEncoder(&block)
	for range 2 {
		block.Reset()
		for _, f := range fields {
			enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
		}
	}
	var start bytes.Buffer
	start.WriteString(http2.ClientPreface)
	fr := http2.NewFramer(&start, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 30})
	fr.WriteWindowUpdate(0, 1<<30)
	http2.NewFramer(&start, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first.Bytes(), EndStream: true, EndHeaders: true})
	if _, err := conn.Write(start.Bytes()); err != nil {
		b.Fatal(err)
	}
	var req bytes.Buffer
	http2.NewFramer(&req, nil).WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block.Bytes(), EndStream: true, EndHeaders: true})
	c := &rawH2Client{conn: conn, br: bufio.NewReaderSize(conn, 64<<10), req: req.Bytes(), id: 1}
	c.read(b)
	return c
}

// do sends one request and reads frames until its stream ends; it returns
// the body length.
func (c *rawH2Client) do(b *testing.B) int {
	binary.BigEndian.PutUint32(c.req[5:], c.id)
	if _, err := c.conn.Write(c.req); err != nil {
		b.Fatal(err)
	}
	return c.read(b)
}

// read reads frames until the current stream ends.
func (c *rawH2Client) read(b *testing.B) int {
	n := 0
	for {
		h, err := c.br.Peek(9)
		if err != nil {
			b.Fatal(err)
		}
		length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
		typ, flags, id := http2.FrameType(h[3]), h[4], binary.BigEndian.Uint32(h[5:])&(1<<31-1)
		switch {
		case typ == http2.FrameRSTStream || typ == http2.FrameGoAway:
			b.Fatalf("%v on stream %d", typ, id)
		case typ == http2.FrameSettings && flags&1 == 0:
			c.conn.Write([]byte{0, 0, 0, 4, 1, 0, 0, 0, 0}) // ACK
		case typ == http2.FrameData && id == c.id:
			n += length
		}
		if _, err := c.br.Discard(9); err != nil {
			b.Fatal(err)
		}
		if _, err := c.br.Discard(length); err != nil {
			b.Fatal(err)
		}
		if id == c.id && flags&0x1 != 0 && (typ == http2.FrameData || typ == http2.FrameHeaders) {
			break
		}
	}
	c.id += 2
	if c.recvd += n; c.recvd > 1<<29 {
		wu := []byte{0, 0, 4, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0}
		binary.BigEndian.PutUint32(wu[9:], uint32(c.recvd))
		c.conn.Write(wu)
		c.recvd = 0
	}
	return n
}

// BenchmarkHit1KH2C is a cache hit of a 1 KiB object over cleartext
// HTTP/2, one stream after another on one connection: allocs/op are the
// server's, and must stay 0.
func BenchmarkHit1KH2C(b *testing.B) {
	e := startEdge(&testing.T{}, "listeners:\n  - addr: 127.0.0.1:0\n    h2c: true\n"+oneRoute, "{{ORIGIN}}", benchOrigin(b))
	defer e.Shutdown(b.Context())
	c := newRawH2Client(b, strings.TrimPrefix(e.URL, "http://"), "/obj")
	defer c.conn.Close()
	for range 100 { // fill the cache, grow the buffers
		c.do(b)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if n := c.do(b); n != 1024 {
			b.Fatalf("body of %d bytes", n)
		}
	}
}

// BenchmarkPass1KUpstreamH2C is BenchmarkPass1K with the origin reached
// over h2c (x/net's HTTP/2 client, as for gRPC origins): next to it, what
// the upstream HTTP/2 path costs per request.
func BenchmarkPass1KUpstreamH2C(b *testing.B) {
	body := strings.Repeat("x", 1024)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	s := &http.Server{Handler: h2c.NewHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		io.WriteString(w, body)
	}), &http2.Server{})}
	go s.Serve(l)
	defer s.Close()
	e := startEdge(&testing.T{}, `
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    protocol: h2c
routes:
  - name: all
    upstream: origin
`, "{{ORIGIN}}", l.Addr().String())
	defer e.Shutdown(b.Context())
	c := newRawClient(b, strings.TrimPrefix(e.URL, "http://"), "/nocache")
	defer c.conn.Close()
	c.do(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if st := c.do(b); st != 200 {
			b.Fatalf("status %d", st)
		}
	}
}
