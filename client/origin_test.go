package client

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/pool"
)

// rawOrigin serves each accepted connection with serve, on loopback, until
// the test ends. serve scripts the misbehaviour under test.
func rawOrigin(t testing.TB, serve func(c net.Conn, br *bufio.Reader)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		open   []net.Conn
		closed bool
	)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			open = append(open, c)
			if closed {
				c.Close()
			}
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				serve(c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		closed = true
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequest reads one request head and its body from an origin's side.
func readRequest(br *bufio.Reader, req *httphead.Request) ([]byte, error) {
	if err := h1.ReadRequest(br, req, nil, h1.Limits{}); err != nil {
		return nil, err
	}
	var body h1.BodyReader
	body.Reset(br, req.ContentLength, req.Chunked)
	return io.ReadAll(&body)
}

// keepAliveOrigin answers every request on a connection with resp.
func keepAliveOrigin(t testing.TB, resp string) string {
	return rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		var req httphead.Request
		for {
			if _, err := readRequest(br, &req); err != nil {
				return
			}
			if _, err := io.WriteString(c, resp); err != nil {
				return
			}
		}
	})
}

func newTransport(t testing.TB, cfg pool.Config) *Transport {
	p := pool.New(cfg)
	t.Cleanup(func() { p.Close() })
	return &Transport{Pool: p}
}

func getRequest(target string) *httphead.Request {
	req := &httphead.Request{}
	req.SetLine([]byte("GET"), []byte(target), []byte("origin.test"), []byte("http"))
	req.ProtoMajor, req.ProtoMinor = 1, 1
	return req
}

// get does one GET and reads the whole body.
func get(t testing.TB, tr *Transport, addr string, req *httphead.Request, resp *httphead.Response) ([]byte, error) {
	t.Helper()
	body, err := tr.RoundTrip(context.Background(), addr, req, nil, resp)
	if err != nil {
		return nil, err
	}
	defer body.Close()
	return io.ReadAll(body)
}
