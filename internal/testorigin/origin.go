// Package testorigin is a scriptable HTTP/1.1 origin for end-to-end tests of
// the proxy. Each path gets a behaviour: a normal response, or one of the
// ways real origins fail (slow first byte, hanging, resetting mid-body,
// sending garbage, lying about Content-Length), and the origin as a whole can
// be killed and restarted on the same port. It counts hits per path and keeps
// the last request seen on each.
//
// It serves with net/http over its own loopback listener; misbehaviours that
// net/http would refuse to produce take over the raw connection (Hijack).
// It is for tests only: it calls t.Fatal and ties its life to the test.
package testorigin

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Origin is a running test origin. Behaviours may be changed while it runs.
type Origin struct {
	t    testing.TB
	addr string
	stop chan struct{} // closed when the test ends; releases hanging handlers

	// mu guards the fields below.
	mu       sync.Mutex
	routes   map[string]http.Handler
	last     map[string]*http.Request
	hits     map[string]*atomic.Int64
	srv      *http.Server
	hijacked map[net.Conn]struct{} // raw conns that srv no longer tracks
	serving  sync.WaitGroup        // the Serve goroutine of srv
}

// New starts an origin on 127.0.0.1 with an ephemeral port and stops it when
// the test ends. Paths without a behaviour get 404.
func New(t testing.TB) *Origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testorigin: %v", err)
	}
	o := &Origin{
		t:        t,
		addr:     ln.Addr().String(),
		stop:     make(chan struct{}),
		routes:   make(map[string]http.Handler),
		last:     make(map[string]*http.Request),
		hits:     make(map[string]*atomic.Int64),
		hijacked: make(map[net.Conn]struct{}),
	}
	o.serve(ln)
	t.Cleanup(func() {
		close(o.stop)
		o.Kill()
	})
	return o
}

// Addr is the origin's host:port; it stays the same across Kill and Restart.
func (o *Origin) Addr() string { return o.addr }

// URL is "http://" + Addr() + path.
func (o *Origin) URL(path string) string { return "http://" + o.addr + path }

// Handle sets the behaviour for an exact request path, replacing any before.
func (o *Origin) Handle(path string, h http.Handler) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.routes[path] = h
}

// Hits is how many requests have arrived for path, whatever their outcome.
func (o *Origin) Hits(path string) int64 {
	return o.counter(path).Load()
}

// LastRequest is the last request seen for path (its body already consumed),
// or nil if none arrived.
func (o *Origin) LastRequest(path string) *http.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last[path]
}

func (o *Origin) counter(path string) *atomic.Int64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	c := o.hits[path]
	if c == nil {
		c = new(atomic.Int64)
		o.hits[path] = c
	}
	return c
}

// ServeHTTP counts the hit, records the request and runs the path's behaviour.
func (o *Origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.counter(r.URL.Path).Add(1)
	o.mu.Lock()
	o.last[r.URL.Path] = r.Clone(r.Context())
	h := o.routes[r.URL.Path]
	o.mu.Unlock()
	if h == nil {
		http.NotFound(w, r)
		return
	}
	h.ServeHTTP(w, r)
}

// Kill closes the listener and every open connection, as if the origin
// process died. Requests in flight see their connection drop.
func (o *Origin) Kill() {
	o.mu.Lock()
	srv := o.srv
	o.srv = nil
	for c := range o.hijacked {
		c.Close()
	}
	clear(o.hijacked)
	o.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
	o.serving.Wait()
}

// Restart listens again on the same address after Kill. The port could in
// principle be taken meanwhile; it retries for a few seconds, then fails the
// test.
func (o *Origin) Restart() {
	o.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", o.addr)
		if err == nil {
			o.serve(ln)
			return
		}
		if time.Now().After(deadline) {
			o.t.Fatalf("testorigin: restart on %s: %v", o.addr, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (o *Origin) serve(ln net.Listener) {
	srv := &http.Server{Handler: o, ReadHeaderTimeout: 10 * time.Second}
	o.mu.Lock()
	o.srv = srv
	o.mu.Unlock()
	o.serving.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.t.Errorf("testorigin: serve: %v", err)
		}
	})
}

// hijack takes over the raw connection of w; Kill closes it too.
func (o *Origin) hijack(w http.ResponseWriter) (net.Conn, bool) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil { // only HTTP/1 connections can be taken over, and this origin speaks nothing else
		return nil, false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.srv == nil { // killed meanwhile
		c.Close()
		return nil, false
	}
	o.hijacked[c] = struct{}{}
	return c, true
}

// release closes a hijacked connection, with an RST when reset is set.
func (o *Origin) release(c net.Conn, reset bool) {
	if tc, ok := c.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
	}
	c.Close()
	o.mu.Lock()
	delete(o.hijacked, c)
	o.mu.Unlock()
}

// rawHead formats a status line and headers for hijacked responses.
func rawHead(status int, header http.Header, contentLength int64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	header.Write(&b)
	if contentLength >= 0 {
		b.WriteString("Content-Length: " + strconv.FormatInt(contentLength, 10) + "\r\n")
	}
	b.WriteString("\r\n")
	return b.Bytes()
}
