//go:build linux

package client

import (
	"bufio"
	"io"
	"net"
	"slices"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/pool"
)

// TestMissNotStalledByNagleOrigin: an origin with Nagle's algorithm on that
// writes the response head and body in two writes (Python's http.server,
// gunicorn's sync worker) holds the body until the head is acknowledged.
// Without a prompt ACK the proxy's delayed ACK (40 ms on Linux) stalls
// every exchange on a reused connection; the client sets TCP_QUICKACK after
// writing each request, so it must not.
//
// This is a behaviour test, not a benchmark: the stall it guards against
// is at least 40 ms, a loopback exchange takes well under 1 ms, so the
// median over 20 exchanges is held to 20 ms, which leaves a wide margin
// for a loaded machine and still fails whenever the stall happens on more
// than half of the exchanges.
func TestMissNotStalledByNagleOrigin(t *testing.T) {
	const head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\n"
	addr := rawOrigin(t, func(c net.Conn, br *bufio.Reader) {
		c.(*net.TCPConn).SetNoDelay(false)
		var req httphead.Request
		for {
			if _, err := readRequest(br, &req); err != nil {
				return
			}
			if _, err := io.WriteString(c, head); err != nil {
				return
			}
			if _, err := io.WriteString(c, "hello world\n"); err != nil {
				return
			}
		}
	})
	tr := newTransport(t, pool.Config{})
	var resp httphead.Response
	var took []time.Duration
	for range 20 {
		start := time.Now()
		body, err := get(t, tr, addr, getRequest("/"), &resp)
		if err != nil || string(body) != "hello world\n" {
			t.Fatalf("body %q, err %v", body, err)
		}
		took = append(took, time.Since(start))
	}
	if st := tr.pool.Stats(tr.PoolKey(addr)); st.Dials != 1 {
		t.Fatalf("%d dials, want 1: the exchanges must share one pooled connection", st.Dials)
	}
	slices.Sort(took)
	if med := took[len(took)/2]; med >= 20*time.Millisecond {
		t.Fatalf("median exchange %v (all: %v), want well under the 40 ms delayed-ACK stall", med, took)
	}
}
