package client

import (
	"bufio"
	"context"
	"io"
	"net"
	"testing"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/pool"
)

// quietOrigin answers every request with a fixed response and allocates
// nothing per request, so -benchmem shows the client's allocations.
func quietOrigin(b *testing.B) string {
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nCache-Control: max-age=60\r\n\r\nhello, world\n")
	return rawOrigin(b, func(c net.Conn, br *bufio.Reader) {
		var req httphead.Request
		var body h1.BodyReader
		for {
			if err := h1.ReadRequest(br, &req, nil, h1.Limits{}); err != nil {
				return
			}
			body.Reset(br, req.ContentLength, req.Chunked)
			if _, err := io.Copy(io.Discard, &body); err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}

func benchmarkRoundTrip(b *testing.B, ctx context.Context) {
	addr := quietOrigin(b)
	tr := newTransport(b, pool.Config{})
	req, resp := getRequest("/bench"), &httphead.Response{}
	req.Header.AddString("Host", "origin.test")
	req.Header.AddString("Accept", "*/*")
	req.Header.AddString("X-Forwarded-For", "192.0.2.1")
	buf := make([]byte, 64)
	b.ReportAllocs()
	for b.Loop() {
		body, err := tr.RoundTrip(ctx, addr, req, nil, resp)
		if err != nil {
			b.Fatal(err)
		}
		for err == nil {
			_, err = body.Read(buf)
		}
		if err != io.EOF {
			b.Fatal(err)
		}
		body.Close()
	}
	if s := tr.Pool.Totals(); s.Dials != 1 {
		b.Errorf("%d dials", s.Dials)
	}
}

func BenchmarkRoundTrip(b *testing.B) { benchmarkRoundTrip(b, context.Background()) }

func BenchmarkRoundTripCancellableContext(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	benchmarkRoundTrip(b, ctx)
}
