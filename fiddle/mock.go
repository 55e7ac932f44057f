package fiddle

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// origins are the mock origin servers of one run: one loopback listener
// per server of each mocked upstream, all answering from the upstream's
// script, over TLS when the upstream uses it. They speak HTTP/1.1 by hand,
// so that they can fail the way real origins do: a reset half way through
// a body, no answer, a refused connection; HTTP/2 through x/net's server,
// failing the same ways (a reset is RST_STREAM after half the body).
type origins struct {
	clock *clock

	mu      sync.Mutex
	scripts map[string][]Rule // by upstream
	fetches []Fetch           // since the last take
	servers []*mockServer
	wg      sync.WaitGroup
}

// mockServer is the stand-in for one configured server.
type mockServer struct {
	o        *origins
	upstream string
	addr     string      // the server's addr in the config
	local    string      // where the mock listens
	tls      *tls.Config // nil for cleartext
	h2       bool

	mu       sync.Mutex
	ln       net.Listener // nil while refusing
	conns    map[net.Conn]struct{}
	refusing bool
}

func newOrigins(c *clock, scripts map[string][]Rule) *origins {
	o := &origins{clock: c, scripts: map[string][]Rule{}}
	for name, rules := range scripts {
		o.scripts[name] = rules
	}
	return o
}

// add starts the mock for one server of an upstream and returns the
// address it listens on. With tlsConf it serves TLS; with h2, HTTP/2
// (cleartext with prior knowledge when tlsConf is nil).
func (o *origins) add(upstream, addr string, tlsConf *tls.Config, h2 bool) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("mock origin for %s %s: %w", upstream, addr, err)
	}
	s := &mockServer{o: o, upstream: upstream, addr: addr, local: ln.Addr().String(), ln: ln, conns: map[net.Conn]struct{}{},
		tls: tlsConf, h2: h2}
	o.mu.Lock()
	o.servers = append(o.servers, s)
	o.mu.Unlock()
	o.wg.Add(1)
	go s.accept(ln)
	return s.local, nil
}

// script replaces the scripts of the upstreams named, then applies
// "refuse" rules: a server refuses connections while its script has one.
func (o *origins) script(scripts map[string][]Rule) error {
	o.mu.Lock()
	for name, rules := range scripts {
		o.scripts[name] = rules
	}
	servers := append([]*mockServer(nil), o.servers...)
	o.mu.Unlock()
	for _, s := range servers {
		if err := s.refuse(o.refuses(s)); err != nil {
			return err
		}
	}
	return nil
}

func (o *origins) refuses(s *mockServer) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, r := range o.scripts[s.upstream] {
		if r.Fail == "refuse" && (r.Server == "" || r.Server == s.addr) {
			return true
		}
	}
	return false
}

// match returns the first rule answering a request, or nil.
func (o *origins) match(s *mockServer, req *http.Request) *Rule {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i, r := range o.scripts[s.upstream] {
		if r.Fail == "refuse" || (r.Method != "" && !strings.EqualFold(r.Method, req.Method)) ||
			(r.Server != "" && r.Server != s.addr) {
			continue
		}
		if pathMatches(r.Path, req.URL.Path, req.RequestURI) {
			return &o.scripts[s.upstream][i]
		}
	}
	return nil
}

// pathMatches: exact (with the query when the rule has one), a prefix
// ending in "*", or everything.
func pathMatches(rule, path, uri string) bool {
	switch {
	case rule == "" || rule == "*":
		return true
	case strings.HasSuffix(rule, "*"):
		return strings.HasPrefix(uri, strings.TrimSuffix(rule, "*"))
	case strings.Contains(rule, "?"):
		return rule == uri
	}
	return rule == path
}

func (o *origins) record(f Fetch) {
	o.mu.Lock()
	o.fetches = append(o.fetches, f)
	o.mu.Unlock()
}

// take returns the fetches recorded since the last call.
func (o *origins) take() []Fetch {
	o.mu.Lock()
	defer o.mu.Unlock()
	f := o.fetches
	o.fetches = nil
	if f == nil {
		f = []Fetch{}
	}
	return f
}

// close stops every mock and waits for their connections to end.
func (o *origins) close() {
	o.mu.Lock()
	servers := o.servers
	o.mu.Unlock()
	for _, s := range servers {
		_ = s.refuse(true)
	}
	o.wg.Wait()
}

// refuse closes the listener and the open connections (pooled ones
// included: a refusing server has none), or listens again on the same
// port.
func (s *mockServer) refuse(on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if on == s.refusing {
		return nil
	}
	s.refusing = on
	if on {
		s.ln.Close()
		s.ln = nil
		for c := range s.conns {
			c.Close()
		}
		return nil
	}
	ln, err := net.Listen("tcp", s.local)
	if err != nil {
		return fmt.Errorf("mock origin for %s %s: listening again: %w", s.upstream, s.addr, err)
	}
	s.ln = ln
	s.o.wg.Add(1)
	go s.accept(ln)
	return nil
}

func (s *mockServer) accept(ln net.Listener) {
	defer s.o.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		if s.refusing {
			s.mu.Unlock()
			c.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.o.wg.Add(1)
		go s.serve(c)
	}
}

// Bounds of a mock exchange.
const (
	maxDelay    = 10 * time.Second // a rule's delay
	holdMax     = 30 * time.Second // how long "timeout" holds a request
	bodyPreview = 64 << 10         // bytes of a body kept in results
)

func (s *mockServer) serve(c net.Conn) {
	defer s.o.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	raw := c
	var ti *TLSInfo
	if s.tls != nil {
		tc := tls.Server(c, s.tls)
		_ = tc.SetDeadline(time.Now().Add(holdMax))
		if err := tc.Handshake(); err != nil {
			// The upstream refused the certificate, or the other way round:
			// the engine's trace says which.
			return
		}
		_ = tc.SetDeadline(time.Time{})
		st := tc.ConnectionState()
		ti = &TLSInfo{SNI: st.ServerName, ALPN: st.NegotiatedProtocol, Version: tls.VersionName(st.Version)}
		c = tc
	}
	if s.h2 {
		(&http2.Server{}).ServeConn(c, &http2.ServeConnOpts{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			s.answerH2(w, req, ti)
		})})
		return
	}
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
		if err != nil {
			return
		}
		if !s.answer(c, raw, req, body, ti) {
			return
		}
	}
}

// plan finds the rule answering a request, records the fetch, and holds
// the rule's delay. It returns the rule, the status and the header.
func (s *mockServer) plan(req *http.Request, body []byte, ti *TLSInfo) (*Rule, int, http.Header) {
	f := Fetch{Upstream: s.upstream, Server: s.addr, Request: FetchedReq{
		Method: req.Method, Path: req.RequestURI, Headers: flatten(req.Header), Body: preview(body),
		Protocol: req.Proto, TLS: ti}}
	f.Request.Headers["Host"] = req.Host
	r := s.o.match(s, req)
	if r == nil {
		r = &Rule{Status: 404, Body: "fiddle: no mock answers " + req.Method + " " + req.URL.Path + " on upstream " + s.upstream + "\n"}
	}
	if d, _ := time.ParseDuration(r.Delay); d > 0 {
		time.Sleep(min(d, maxDelay))
	}
	status := r.Status
	if status == 0 {
		status = 200
	}
	h := http.Header{}
	for k, v := range r.Headers {
		h.Set(k, v)
	}
	if h.Get("Date") == "" {
		h.Set("Date", s.o.clock.Now().UTC().Format(http.TimeFormat))
	}
	h.Set("Content-Length", strconv.Itoa(len(r.Body)))
	f.Response = FetchedResp{Status: status, Headers: flatten(h), Body: preview([]byte(r.Body)), Fail: r.Fail}
	s.o.record(f)
	return r, status, h
}

// answer sends what the script says over HTTP/1.1; it reports whether
// the connection may carry another request. raw is the TCP connection
// under c.
func (s *mockServer) answer(c, raw net.Conn, req *http.Request, body []byte, ti *TLSInfo) bool {
	r, status, h := s.plan(req, body, ti)
	switch r.Fail {
	case "timeout":
		// No answer: the proxy's first byte timeout ends the exchange.
		_ = c.SetReadDeadline(time.Now().Add(holdMax))
		_, _ = io.Copy(io.Discard, c)
		return false
	case "reset":
		head := appendHead(nil, status, h)
		_, _ = c.Write(append(head, r.Body[:len(r.Body)/2]...))
		if tc, ok := raw.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // RST, not FIN
		}
		return false
	}
	out := appendHead(nil, status, h)
	if req.Method != http.MethodHead {
		out = append(out, r.Body...)
	}
	_, err := c.Write(out)
	return err == nil
}

// answerH2 sends what the script says over HTTP/2.
func (s *mockServer) answerH2(w http.ResponseWriter, req *http.Request, ti *TLSInfo) {
	body, err := io.ReadAll(io.LimitReader(req.Body, 8<<20))
	if err != nil {
		return
	}
	r, status, h := s.plan(req, body, ti)
	if r.Fail == "timeout" {
		// No answer: the proxy's first byte timeout ends the exchange.
		select {
		case <-req.Context().Done():
		case <-time.After(holdMax):
		}
		panic(http.ErrAbortHandler) // RST_STREAM, no response
	}
	for k, v := range h {
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	if r.Fail == "reset" {
		_, _ = io.WriteString(w, r.Body[:len(r.Body)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // RST_STREAM half way through the body
	}
	if req.Method != http.MethodHead {
		_, _ = io.WriteString(w, r.Body)
	}
}

func appendHead(b []byte, status int, h http.Header) []byte {
	b = fmt.Appendf(b, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range h[k] {
			b = fmt.Appendf(b, "%s: %s\r\n", k, v)
		}
	}
	return append(b, "\r\n"...)
}

// flatten joins a header's values, one entry per field name.
func flatten(h http.Header) map[string]string {
	m := make(map[string]string, len(h))
	for k, v := range h {
		m[k] = strings.Join(v, ", ")
	}
	return m
}

func preview(b []byte) string {
	if len(b) > bodyPreview {
		b = b[:bodyPreview]
	}
	return string(b)
}
