// Package h2 adapts golang.org/x/net/http2 to Outpost: the server side turns
// each HTTP/2 stream into a proxy.Session, the client side sends upstream
// requests over HTTP/2 (TLS or cleartext h2c) for gRPC and h2 origins.
//
// HTTP/2 framing, flow control and HPACK come from x/net/http2, which also
// carries defences against rapid reset (CVE-2023-44487), oversized header
// blocks and unread control frames; this package sets their limits and
// counts the protocol errors. On top, every server connection draws on a
// budget for frames that do no work (PING, SETTINGS, RST_STREAM, PRIORITY,
// CONTINUATION, empty DATA): a client that floods them gets GOAWAY
// (flood.go). Only HTTP/1.1 has a codec of Outpost's own, where it pays off
// on the hot path.
package h2

import (
	"context"
	"crypto/tls"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Limits bound what one HTTP/2 connection may use. Zero fields take the
// defaults.
type Limits struct {
	// MaxConcurrentStreams bounds the streams open at once; more are
	// refused, and a client that keeps resetting streams beyond it
	// (rapid reset) loses the connection. Default 100.
	MaxConcurrentStreams uint32
	// MaxHeaderBytes bounds a decoded header list, which bounds what
	// indexed HPACK references can expand into. Default 64 KiB.
	MaxHeaderBytes  int
	IdleTimeout     time.Duration // default 60s
	ReadIdleTimeout time.Duration // ping an idle connection after this; default 30s
	// WriteTimeout ends a connection whose client takes no bytes for
	// this long (a slow reader); default 60s.
	WriteTimeout time.Duration
}

// hpackTable is the HPACK dynamic table size in both directions: the
// RFC 9113 default. The client cannot make Outpost keep a larger one.
const hpackTable = 4096

// Server serves HTTP/2 connections. It is safe for concurrent use.
type Server struct {
	// Log receives protocol errors clients cause; nil means slog.Default.
	Log *slog.Logger
	// ProtocolErrors counts protocol errors clients caused, among them the
	// abuse x/net/http2 detects: too many early resets, oversized header
	// blocks, streams over the limit.
	ProtocolErrors atomic.Int64
	// Floods counts connections ended for sending too many frames that
	// do no work (see h2Watch).
	Floods atomic.Int64

	h2 *http2.Server
	hs *http.Server

	once sync.Once
}

// NewServer returns a server with the given limits.
func NewServer(lim Limits) *Server {
	if lim.MaxConcurrentStreams == 0 {
		lim.MaxConcurrentStreams = 100
	}
	if lim.MaxHeaderBytes == 0 {
		lim.MaxHeaderBytes = 64 << 10
	}
	if lim.IdleTimeout == 0 {
		lim.IdleTimeout = 60 * time.Second
	}
	if lim.ReadIdleTimeout == 0 {
		lim.ReadIdleTimeout = 30 * time.Second
	}
	if lim.WriteTimeout == 0 {
		lim.WriteTimeout = 60 * time.Second
	}
	s := &Server{}
	s.h2 = &http2.Server{
		MaxConcurrentStreams:      lim.MaxConcurrentStreams,
		IdleTimeout:               lim.IdleTimeout,
		ReadIdleTimeout:           lim.ReadIdleTimeout,
		WriteByteTimeout:          lim.WriteTimeout,
		MaxReadFrameSize:          64 << 10,
		MaxDecoderHeaderTableSize: hpackTable,
		MaxEncoderHeaderTableSize: hpackTable,
		CountError:                s.countError,
	}
	s.hs = &http.Server{MaxHeaderBytes: lim.MaxHeaderBytes, ErrorLog: log.New(logWriter{s}, "", 0)}
	// ConfigureServer links the two so that hs.Shutdown sends GOAWAY on
	// every connection this server serves.
	_ = http2.ConfigureServer(s.hs, s.h2)
	return s
}

// countError is x/net/http2's report of a protocol error; errType names
// it ("too_many_early_resets", "over_max_streams", ...).
func (s *Server) countError(errType string) {
	s.ProtocolErrors.Add(1)
	s.log().Debug("HTTP/2 protocol error", "type", errType)
}

// logWriter sends what x/net/http2 logs (connection errors a client
// caused) to the server's logger instead of the process's stderr.
type logWriter struct{ s *Server }

func (w logWriter) Write(p []byte) (int, error) {
	w.s.log().Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (s *Server) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}

// ServeConn serves one HTTP/2 connection until it ends. When drain is done
// the connection gets GOAWAY and ends once its open streams have finished.
func (s *Server) ServeConn(drain context.Context, conn net.Conn, client netip.AddrPort, tlsState *tls.ConnectionState, serve func(context.Context, proxy.Session) error) {
	stop := context.AfterFunc(drain, func() {
		s.once.Do(func() { go s.hs.Shutdown(context.Background()) })
	})
	defer stop()
	scheme := "http"
	if tlsState != nil {
		scheme = "https"
	}
	s.h2.ServeConn(s.watch(conn, tlsState), &http2.ServeConnOpts{
		Context:    drain,
		BaseConfig: s.hs,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sess := sessionPool.Get().(*session)
			sess.fill(w, r, client, tlsState, scheme)
			err := serve(r.Context(), sess)
			wrote := sess.wrote
			sess.release()
			if err != nil && wrote {
				// Reset the stream: the client must not take a truncated
				// body for a whole one.
				panic(http.ErrAbortHandler)
			}
		}),
	})
}

var sessionPool = sync.Pool{New: func() any { return &session{} }}

// session is one HTTP/2 stream as a proxy.Session.
type session struct {
	w      http.ResponseWriter
	r      *http.Request
	stream bool // the body's length is unknown: flush each write
	req    httphead.Request
	client netip.AddrPort
	tls    *tls.ConnectionState
	wrote  bool
	body   limitedBody
}

// limitedBody is a request body held to limits.max_body_bytes, which an
// HTTP/2 body of unknown length can only be checked against as it comes.
type limitedBody struct {
	r      io.Reader
	n, max int64
}

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.n += int64(n)
	if b.n > b.max {
		return n, proxy.Errorf(413, proxy.FromDownstream, "request body too large", nil)
	}
	return n, err
}

// LimitBody holds the request body to max bytes.
func (s *session) LimitBody(max int64) { s.body = limitedBody{r: s.r.Body, max: max} }

func (s *session) fill(w http.ResponseWriter, r *http.Request, client netip.AddrPort, tlsState *tls.ConnectionState, scheme string) {
	s.w, s.r, s.client, s.tls, s.wrote, s.body = w, r, client, tlsState, false, limitedBody{}
	s.req.Reset()
	s.req.SetLine([]byte(r.Method), []byte(r.RequestURI), []byte(r.Host), []byte(scheme))
	s.req.ProtoMajor, s.req.ProtoMinor = 2, 0
	for name, values := range r.Header {
		if name == "Cookie" && len(values) > 1 {
			// HTTP/2 may split cookies into several fields; HTTP/1.1
			// origins expect one (RFC 9113 section 8.2.3).
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
}

func (s *session) release() {
	s.w, s.r, s.tls = nil, nil, nil
	sessionPool.Put(s)
}

func (s *session) Request() *httphead.Request { return &s.req }
func (s *session) Body() io.Reader {
	if s.body.max > 0 {
		return &s.body
	}
	return s.r.Body
}
func (s *session) ClientAddr() netip.AddrPort { return s.client }
func (s *session) TLS() *tls.ConnectionState  { return s.tls }

func (s *session) Upgrade() (io.ReadWriteCloser, error) { return nil, proxy.ErrUpgradeUnsupported }

// SetReadDeadline bounds the next reads of the request body; a read past
// it fails with an error wrapping os.ErrDeadlineExceeded.
func (s *session) SetReadDeadline(t time.Time) error {
	return http.NewResponseController(s.w).SetReadDeadline(t)
}

func (s *session) WriteHead(resp *httphead.Response) error {
	h := s.w.Header()
	for i := 0; i < resp.Header.Len(); i++ {
		name, value := resp.Header.Field(i)
		if httphead.IsHopByHop(name) || httphead.EqualFold(name, "Content-Length") {
			continue
		}
		h.Add(string(name), string(value))
	}
	if resp.ContentLength >= 0 && resp.Status != 304 && resp.Status != 204 {
		h.Set("Content-Length", strconv.FormatInt(resp.ContentLength, 10))
	}
	s.wrote = true
	s.stream = resp.ContentLength < 0
	s.w.WriteHeader(resp.Status)
	return nil
}

// WriteInterim sends an interim response (103 Early Hints) as a HEADERS
// frame of its own. x/net/http2 sends the handler's header map with a 1xx,
// so the map holds the interim fields only for the call: the final
// response starts from an empty one.
func (s *session) WriteInterim(resp *httphead.Response) error {
	h := s.w.Header()
	for i := 0; i < resp.Header.Len(); i++ {
		name, value := resp.Header.Field(i)
		if httphead.IsHopByHop(name) || httphead.EqualFold(name, "Content-Length") {
			continue
		}
		h.Add(string(name), string(value))
	}
	s.w.WriteHeader(resp.Status)
	clear(h)
	return nil
}

// Write sends body bytes. A body of unknown length (a stream: gRPC,
// server-sent events) is flushed at once; a body of known length leaves
// with the end of the stream, in as few DATA frames as it fits.
func (s *session) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	if err == nil && s.stream {
		if f, ok := s.w.(http.Flusher); ok {
			f.Flush()
		}
	}
	return n, err
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
