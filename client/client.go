// Package client sends HTTP/1.1 requests to origins over pooled keep-alive
// connections: it takes or dials a connection (TCP or TLS with SNI), frames
// and streams the request with package h1, reads the response head, and
// hands back the body; reading that body to its end returns the connection
// to the pool. It makes no routing or retry-across-peers decisions: errors
// say where they happened (Error) so the proxy engine can choose.
//
// It is hand-written rather than built on net/http's Transport because a
// CDN node needs near-total connection reuse (the default Transport keeps 2
// idle connections per host), zero-copy heads (httphead, not a map per
// response), strict response framing (h1 rejects what could desync the
// connection), and the raw connection after 101 Switching Protocols.
package client

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/pool"
)

// Transport is the configuration and pool of an upstream HTTP/1.1 client.
// The zero value is usable. It must not be copied after first use.
type Transport struct {
	// Pool keeps idle connections. Nil means a pool with default settings,
	// made on first use and closed by Close.
	Pool *pool.Pool
	// Dial opens TCP connections. Nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, when set, makes every connection TLS with this configuration.
	// An empty ServerName means the host part of addr, used for SNI and
	// verification. Client certificates may be set here. Connections are
	// pooled per configuration, so Transports sharing a Pool never share
	// connections made with different TLS configurations.
	TLS *tls.Config
	// ConnectTimeout bounds dialling plus the TLS handshake. Zero means 10s.
	ConnectTimeout time.Duration
	// FirstByteTimeout bounds the time from starting to write the request
	// head to the first byte of the response. Zero means 60s.
	FirstByteTimeout time.Duration
	// IdleTimeout bounds the origin's silence while the request body is
	// written and while the response body is read: each read or write
	// must progress within it. Zero means 60s.
	IdleTimeout time.Duration
	// Limits bounds response heads. The zero value means h1's defaults.
	Limits h1.Limits

	once        sync.Once
	pool        *pool.Pool // Pool, or the default one
	defaultPool *pool.Pool
	tlsTag      string // names t.TLS in pool keys
	dialer      net.Dialer
}

// Errors a RoundTrip may wrap, to be tested with errors.Is.
var (
	// ErrTimeout is wrapped by every origin timeout. It also matches
	// context.DeadlineExceeded, so engines that map deadlines to 504 do
	// so for origin timeouts as well.
	ErrTimeout error = timeoutError{}
	// ErrConnectTimeout: dialling or the TLS handshake took longer than
	// ConnectTimeout.
	ErrConnectTimeout = fmt.Errorf("connect: %w", ErrTimeout)
	// ErrFirstByteTimeout: the origin sent no response within
	// FirstByteTimeout of the request.
	ErrFirstByteTimeout = fmt.Errorf("first byte: %w", ErrTimeout)
	// ErrIdleTimeout: a body read or write made no progress within
	// IdleTimeout.
	ErrIdleTimeout = fmt.Errorf("idle: %w", ErrTimeout)
	// ErrShortBody: the request body ended before its ContentLength.
	ErrShortBody = errors.New("client: request body shorter than its Content-Length")
)

type timeoutError struct{}

func (timeoutError) Error() string        { return "origin timed out" }
func (timeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// Op names the step of an exchange where an Error happened.
type Op string

const (
	OpConnect      Op = "connect"            // dial or TLS handshake; nothing was sent
	OpWrite        Op = "write request"      // writing the head or body to the origin
	OpRequestBody  Op = "read request body"  // reading the body the caller gave: the client's side failed
	OpReadHead     Op = "read response head" // waiting for or parsing the response head
	OpReadBody     Op = "read response body" // reading the response body after RoundTrip returned
	OpInterimLimit Op = "interim responses"  // too many 1xx responses
)

// Error is a failed exchange with an origin.
type Error struct {
	Op   Op
	Addr string
	// Reused is set when the connection had served earlier requests.
	Reused bool
	// BeforeWrite is set when no byte reached the origin: any request may
	// be retried, on this peer or another.
	BeforeWrite bool
	// BeforeResponse is set when no response byte arrived.
	BeforeResponse bool
	Err            error
}

func (e *Error) Error() string {
	return fmt.Sprintf("client: %s %s: %v", e.Op, e.Addr, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// init settles what the configuration implies, once: the configuration
// must not change after the first RoundTrip.
func (t *Transport) init() {
	t.once.Do(func() {
		t.pool = t.Pool
		if t.pool == nil {
			t.defaultPool = pool.New(pool.Config{})
			t.pool = t.defaultPool
		}
		if t.TLS != nil {
			t.tlsTag = fmt.Sprintf("tls-config@%p", t.TLS)
		}
	})
}

// Close closes the default pool, if the Transport made one. Call it after
// the last RoundTrip.
func (t *Transport) Close() error {
	t.init()
	if t.defaultPool != nil {
		return t.defaultPool.Close()
	}
	return nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// key returns the pool key of connections to addr.
func (t *Transport) key(addr string) pool.Key {
	if t.TLS == nil {
		return pool.Key{Addr: addr}
	}
	return pool.Key{Addr: addr, TLS: true, SNI: t.serverName(addr), Tag: t.tlsTag}
}

func (t *Transport) serverName(addr string) string {
	if t.TLS.ServerName != "" {
		return t.TLS.ServerName
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return host
}

// Interim is implemented by a RoundTrip context that takes the interim
// (1xx) responses an origin sends before its final one: 103 Early Hints,
// 102 Processing. RoundTrip calls Interim with each but 101, in order, as
// it arrives; resp and its fields are valid only during the call, which
// may change them. Interim must not block for long: the exchange waits.
type Interim interface {
	Interim(resp *httphead.Response)
}

// RoundTrip sends req to the origin at addr ("host:port") and reads the
// response head into resp. Interim 1xx responses other than 101 go to ctx
// when it implements Interim, and are skipped otherwise.
//
// The caller prepares req's fields (Host, end-to-end fields); RoundTrip
// replaces the framing fields in req.Header: Content-Length when body is
// nil or req.ContentLength is known, chunked coding when it is -1. It drops
// "Expect: 100-continue", since the body is already on its way. The request
// target sent is req.Target in origin-form, or Path and Query otherwise.
//
// The returned body must be closed. Reading it to io.EOF on a keep-alive
// connection puts the connection back in the pool; closing it earlier
// closes the connection. For a 101 response the body is an *Upgraded
// connection, readable and writable, that no longer belongs to the pool.
//
// ctx bounds the whole exchange, the body included: when it ends, a body
// read in progress fails with ctx's error and the connection closes (a 101
// tunnel is the caller's to bound). The body is also bounded by
// IdleTimeout and by closing it. A reused connection that fails
// before any response byte (the origin closed it while idle) is retried
// once on a new connection when the request is idempotent and its body was
// not started. Errors are *Error.
func (t *Transport) RoundTrip(ctx context.Context, addr string, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	t.init()
	length := frameRequest(req, body)
	if length == 0 {
		body = nil
	}
	key := t.key(addr)
	c, reused, err := t.getConn(ctx, key, addr, idempotent(req) && length == 0)
	if err != nil {
		return nil, err
	}
	rc, err := c.roundTrip(ctx, req, body, length, resp)
	if err != nil && reused && retryable(ctx, err, req, c.src.reads) {
		if c, err = t.newConn(ctx, key, addr); err != nil {
			return nil, err
		}
		rc, err = c.roundTrip(ctx, req, body, length, resp)
	}
	return rc, err
}

// retryable reports whether a failure on a reused connection may be
// retried on a new one: no response byte came, nothing of the body was
// consumed, the failure was not a timeout or cancellation, and sending the
// request twice is harmless (RFC 9110 section 9.2.2).
func retryable(ctx context.Context, err error, req *httphead.Request, bodyReads int) bool {
	var e *Error
	return errors.As(err, &e) && e.BeforeResponse && bodyReads == 0 && ctx.Err() == nil &&
		e.Op != OpRequestBody && !errors.Is(e, ErrTimeout) && idempotent(req)
}

func idempotent(req *httphead.Request) bool {
	switch string(req.Method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return req.Header.Has("Idempotency-Key")
}
