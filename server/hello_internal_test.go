package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	goruntime "runtime"
	"testing"
	"time"
)

// helloOnly is a client connection that sends one ClientHello and then
// ends: a handshake over it fails on the server's side.
type helloOnly struct {
	net.Conn // nil: only the methods below are called
	r        bytes.Reader
}

func (c *helloOnly) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *helloOnly) Write(p []byte) (int, error)      { return 0, io.ErrClosedPipe }
func (c *helloOnly) Close() error                     { return nil }
func (c *helloOnly) RemoteAddr() net.Addr             { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 1} }
func (c *helloOnly) SetDeadline(time.Time) error      { return nil }
func (c *helloOnly) SetReadDeadline(time.Time) error  { return nil }
func (c *helloOnly) SetWriteDeadline(time.Time) error { return nil }

// clientHello returns the first flight of a TLS client.
func clientHello(t *testing.T) []byte {
	var out bytes.Buffer
	c := tls.Client(&recorder{w: &out}, &tls.Config{ServerName: "example.test"})
	_ = c.Handshake() // fails once the hello is written: nothing answers
	if out.Len() == 0 {
		t.Fatal("no ClientHello written")
	}
	return out.Bytes()
}

// recorder keeps what is written to it and has nothing to read.
type recorder struct {
	helloOnly
	w io.Writer
}

func (r *recorder) Write(p []byte) (int, error) { return r.w.Write(p) }
func (r *recorder) Read([]byte) (int, error)    { return 0, io.EOF }

func heapInUse() uint64 {
	goruntime.GC()
	goruntime.GC()
	var m goruntime.MemStats
	goruntime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Failed handshakes, each after its ClientHello was fingerprinted, must
// leave nothing behind: a table of fingerprints by connection kept an
// entry for each. The handshakes fail at the cheapest point after the
// fingerprint (the config hook refuses the server name), so that a
// million run in a few seconds.
func TestFailedTLSHandshakesLeaveTheHeapWhereItStarted(t *testing.T) {
	n := 1_000_000
	if testing.Short() || raceEnabled {
		n = 100_000
	}
	hello := clientHello(t)
	s := New(Runtime{}, slog.New(slog.DiscardHandler))
	refuse := &tls.Config{GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
		return nil, errors.New("unknown server name")
	}}
	printed := 0
	opts := Listener{TLS: fingerprinting(refuse, func(*tls.ClientHelloInfo) string {
		printed++
		return "t13d1516h2_8daaf6152771_02713d6af862"
	})}
	handshake := func() {
		c := &helloOnly{}
		c.r.Reset(hello)
		s.serveConn(c, s.track(c), opts)
	}
	for range 1000 { // warm up pools and lazily built state
		handshake()
	}
	before := heapInUse()
	start := time.Now()
	for range n {
		handshake()
	}
	took := time.Since(start)
	after := heapInUse()
	if printed != n+1000 {
		t.Fatalf("%d ClientHellos fingerprinted, want %d: the handshakes did not get that far", printed, n+1000)
	}
	if s.Conns() != 0 {
		t.Errorf("%d connections still tracked", s.Conns())
	}
	const slack = 1 << 20
	if after > before+slack {
		t.Errorf("heap grew from %d to %d bytes over %d failed handshakes (%d bytes each)",
			before, after, n, (after-before)/uint64(n))
	}
	t.Logf("%d failed handshakes in %v; heap %d -> %d bytes", n, took, before, after)
}
