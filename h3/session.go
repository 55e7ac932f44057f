package h3

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// session is one HTTP/3 request as a proxy.Session, on net/http's
// request and response writer as quic-go's http3 gives them.
type session struct {
	w      http.ResponseWriter
	r      *http.Request
	stream bool // the body's length is unknown: flush each write
	req    httphead.Request
	client netip.AddrPort
	wrote  bool
	body   limitedBody
}

func newSession(w http.ResponseWriter, r *http.Request) *session {
	s := &session{w: w, r: r}
	s.body.r = r
	s.client, _ = netip.ParseAddrPort(r.RemoteAddr)
	s.req.SetLine([]byte(r.Method), []byte(r.RequestURI), []byte(r.Host), []byte("https"))
	s.req.ProtoMajor, s.req.ProtoMinor = 3, 0
	for name, values := range r.Header {
		if name == "Cookie" && len(values) > 1 {
			// HTTP/3 may split cookies into several fields; HTTP/1.1
			// origins expect one (RFC 9114 section 4.2.1).
			s.req.Header.AddString(name, strings.Join(values, "; "))
			continue
		}
		for _, v := range values {
			s.req.Header.AddString(name, v)
		}
	}
	s.req.ContentLength = r.ContentLength
	if r.ContentLength < 0 {
		s.req.ContentLength = -1
	}
	return s
}

// limitedBody is a request body held to limits.max_body_bytes, which a
// body of unknown length can only be checked against as it comes.
type limitedBody struct {
	r        *http.Request
	n, max   int64 // max 0: no limit
	trailers httphead.Header
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Body.Read(p)
	b.n += int64(n)
	if b.max > 0 && b.n > b.max {
		return n, proxy.Errorf(413, proxy.FromDownstream, "request body too large", nil)
	}
	return n, err
}

// Trailers returns the request's trailer section, which quic-go fills in
// when the body has been read to its end (proxy.Trailered).
func (b *limitedBody) Trailers() *httphead.Header {
	b.trailers.Reset()
	b.trailers.AddMap(b.r.Trailer)
	return &b.trailers
}

// LimitBody holds the request body to max bytes.
func (s *session) LimitBody(max int64) { s.body.max = max }

func (s *session) Request() *httphead.Request { return &s.req }
func (s *session) Body() io.Reader            { return &s.body }
func (s *session) ClientAddr() netip.AddrPort { return s.client }
func (s *session) TLS() *tls.ConnectionState  { return s.r.TLS }

// Early reports whether the request came in 0-RTT, before the handshake
// ended.
func (s *session) Early() bool { return s.r.TLS != nil && !s.r.TLS.HandshakeComplete }

// JA4 returns the fingerprint of the connection's QUIC ClientHello, ""
// when none was computed.
func (s *session) JA4() string {
	if h, ok := s.r.Context().Value(helloKey{}).(*hello); ok {
		return h.ja4
	}
	return ""
}

func (s *session) Upgrade() (io.ReadWriteCloser, error) { return nil, proxy.ErrUpgradeUnsupported }

// SetReadDeadline bounds the next reads of the request body.
func (s *session) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(s.w).SetReadDeadline(t)
}

func (s *session) copyFields(h *httphead.Header) {
	dst := s.w.Header()
	for i := 0; i < h.Len(); i++ {
		name, value := h.Field(i)
		if httphead.IsHopByHop(name) || httphead.EqualFold(name, "Content-Length") {
			continue
		}
		dst.Add(string(name), string(value))
	}
}

func (s *session) WriteHead(resp *httphead.Response) error {
	s.copyFields(&resp.Header)
	if resp.ContentLength >= 0 && resp.Status != 304 && resp.Status != 204 {
		s.w.Header().Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	s.wrote = true
	s.stream = resp.ContentLength < 0
	s.w.WriteHeader(resp.Status)
	return nil
}

// WriteInterim sends an interim response (103 Early Hints); the header
// map holds its fields only for the call.
func (s *session) WriteInterim(resp *httphead.Response) error {
	s.copyFields(&resp.Header)
	s.w.WriteHeader(resp.Status)
	clear(s.w.Header())
	return nil
}

// Write sends body bytes; a body of unknown length (server-sent events) is
// flushed at once.
func (s *session) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err == nil && s.stream {
		if f, ok := s.w.(http.Flusher); ok {
			f.Flush()
		}
	}
	return n, err
}

// FlushHead sends the head, which quic-go holds until the first body
// bytes (proxy.HeadFlusher).
func (s *session) FlushHead() error {
	if f, ok := s.w.(interface{ FlushError() error }); ok {
		return f.FlushError()
	}
	return nil
}

func (s *session) Finish(trailers *httphead.Header) error {
	if trailers != nil {
		h := s.w.Header()
		for i := 0; i < trailers.Len(); i++ {
			name, value := trailers.Field(i)
			h.Add(http.TrailerPrefix+string(name), string(value))
		}
	}
	return nil
}
