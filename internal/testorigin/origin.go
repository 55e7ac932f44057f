// Package testorigin is a scriptable HTTP origin for end-to-end tests of the
// proxy. Each exact path gets a behaviour, and the origin as a whole can be
// killed and restarted on the same port. It counts hits per path and TCP
// connections (to check reuse), and keeps the last request seen on each path.
//
//	Respond        a fixed status, headers and body
//	Echo           the request body streamed back
//	Chunked        a chunked body, one flush per chunk, with trailers
//	Stream         N bytes of a deterministic pattern, generated as sent, with Range
//	Trickle        the pattern in small pieces at an interval
//	SlowFirstByte  a fixed response after a delay
//	Hang           no answer at all
//	BreakMidBody   part of a declared Content-Length, then FIN, RST or silence
//	WrongLength    a Content-Length that does not match the body
//	Garbage        bytes that are not HTTP
//	Handle         any http.Handler
//
// It serves with net/http over its own loopback listener: HTTP/1.1 (New),
// HTTP/1.1 and HTTP/2 over TLS (NewTLS), or HTTP/1.1 and cleartext HTTP/2
// (NewH2C). Misbehaviours that net/http would refuse to produce take over the
// raw connection (Hijack) on HTTP/1; on HTTP/2 they end the stream with
// RST_STREAM instead, since the connection is shared.
// It is for tests only: it calls t.Fatal and ties its life to the test.
package testorigin

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log"
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
	t        testing.TB
	addr     string
	protocol protocol
	cert     tls.Certificate // for TLS
	certFile string          // PEM of cert, for TLS
	stop     chan struct{}   // closed when the test ends; releases hanging handlers
	conns    atomic.Int64    // TCP connections accepted

	// mu guards the fields below.
	mu       sync.Mutex
	routes   map[string]http.Handler
	last     map[string]*http.Request
	hits     map[string]*atomic.Int64
	srv      *http.Server
	hijacked map[net.Conn]struct{} // raw conns that srv no longer tracks
	serving  sync.WaitGroup        // the Serve goroutine of srv
}

// protocol is what an origin speaks; it is fixed at creation.
type protocol int

const (
	http1 protocol = iota
	overTLS
	h2c
)

// New starts an HTTP/1.1 origin on 127.0.0.1 with an ephemeral port and
// stops it when the test ends. Paths without a behaviour get 404.
func New(t testing.TB) *Origin {
	t.Helper()
	return start(t, http1)
}

// NewTLS starts an origin speaking HTTP/1.1 and HTTP/2 over TLS (chosen by
// ALPN) with a self-signed certificate for 127.0.0.1 and localhost; see
// CertFile and ClientTLS.
func NewTLS(t testing.TB) *Origin {
	t.Helper()
	return start(t, overTLS)
}

// NewH2C starts an origin speaking HTTP/1.1 and cleartext HTTP/2 (prior
// knowledge) on the same port.
func NewH2C(t testing.TB) *Origin {
	t.Helper()
	return start(t, h2c)
}

func start(t testing.TB, p protocol) *Origin {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testorigin: %v", err)
	}
	o := &Origin{
		t:        t,
		protocol: p,
		addr:     ln.Addr().String(),
		stop:     make(chan struct{}),
		routes:   make(map[string]http.Handler),
		last:     make(map[string]*http.Request),
		hits:     make(map[string]*atomic.Int64),
		hijacked: make(map[net.Conn]struct{}),
	}
	if p == overTLS {
		o.cert, o.certFile = selfSigned(t)
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

// URL is "http://" (or "https://" for NewTLS) + Addr() + path.
func (o *Origin) URL(path string) string {
	if o.protocol == overTLS {
		return "https://" + o.addr + path
	}
	return "http://" + o.addr + path
}

// CertFile is the PEM file of a NewTLS origin's certificate, which is its own
// root: give it to the proxy as the upstream CA. Empty for other origins.
func (o *Origin) CertFile() string { return o.certFile }

// ClientTLS returns a client configuration that trusts a NewTLS origin. ALPN
// is left to the client (http.Transport sets it from its Protocols).
func (o *Origin) ClientTLS() *tls.Config {
	pool := x509.NewCertPool()
	if o.cert.Certificate != nil {
		leaf, _ := x509.ParseCertificate(o.cert.Certificate[0]) // made by selfSigned, so valid
		pool.AddCert(leaf)
	}
	return &tls.Config{RootCAs: pool}
}

// Conns is how many TCP connections the origin has accepted, across restarts;
// with Hits it shows whether the client reuses connections.
func (o *Origin) Conns() int64 { return o.conns.Load() }

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
	srv := &http.Server{
		Handler:           o,
		ReadHeaderTimeout: 10 * time.Second,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				o.conns.Add(1)
			}
		},
		ErrorLog: log.New(io.Discard, "", 0), // aborted handlers are on purpose
	}
	switch o.protocol {
	case overTLS:
		srv.TLSConfig = &tls.Config{Certificates: []tls.Certificate{o.cert}}
	case h2c:
		srv.Protocols = new(http.Protocols)
		srv.Protocols.SetHTTP1(true)
		srv.Protocols.SetUnencryptedHTTP2(true)
	}
	o.mu.Lock()
	o.srv = srv
	o.mu.Unlock()
	o.serving.Go(func() {
		var err error
		if o.protocol == overTLS {
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			o.t.Errorf("testorigin: serve: %v", err)
		}
	})
}

// hijack takes over the raw connection of w; Kill closes it too.
func (o *Origin) hijack(w http.ResponseWriter) (net.Conn, bool) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err != nil { // callers keep HTTP/2 away; the connection is gone otherwise
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
	raw := c
	if tc, ok := c.(*tls.Conn); ok {
		raw = tc.NetConn()
	}
	if tc, ok := raw.(*net.TCPConn); ok && reset {
		tc.SetLinger(0)
		raw.Close() // straight to RST, no TLS close_notify first
	}
	c.Close()
	o.mu.Lock()
	delete(o.hijacked, c)
	o.mu.Unlock()
}

// okHead formats a 200 status line and headers for hijacked responses.
func okHead(header http.Header, contentLength int64) []byte {
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	header.Write(&b)
	b.WriteString("Content-Length: " + strconv.FormatInt(contentLength, 10) + "\r\n\r\n")
	return b.Bytes()
}
