package h2

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"golang.org/x/net/http2"

	"github.com/outpost-edge/outpost/httphead"
)

// Client sends requests to HTTP/2 origins. One Client multiplexes all
// requests to a server over one connection, so it reuses connections by
// construction.
type Client struct {
	t      *http2.Transport
	scheme string
}

// NewClient returns a client for TLS origins (tlsConf set; it should
// carry ServerName for SNI) or for cleartext h2c (tlsConf nil).
func NewClient(tlsConf *tls.Config, connectTimeout time.Duration) *Client {
	d := &net.Dialer{Timeout: connectTimeout, KeepAlive: 30 * time.Second}
	t := &http2.Transport{ReadIdleTimeout: 30 * time.Second, PingTimeout: 10 * time.Second}
	c := &Client{t: t, scheme: "https"}
	if tlsConf == nil {
		c.scheme = "http"
		t.AllowHTTP = true
		t.DialTLSContext = func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	} else {
		t.TLSClientConfig = tlsConf.Clone()
		t.TLSClientConfig.NextProtos = []string{"h2"}
		t.DialTLSContext = func(ctx context.Context, network, addr string, cfg *tls.Config) (net.Conn, error) {
			return (&tls.Dialer{NetDialer: d, Config: cfg}).DialContext(ctx, network, addr)
		}
	}
	return c
}

// RoundTrip sends req to the server at addr and reads the response head
// into resp. The body carries the trailers once read to the end.
func (c *Client) RoundTrip(ctx context.Context, addr string, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	hr := &http.Request{
		Method:        string(req.Method),
		URL:           &url.URL{Scheme: c.scheme, Host: addr},
		Host:          string(req.Host),
		Header:        make(http.Header, req.Header.Len()),
		ContentLength: req.ContentLength,
		Proto:         "HTTP/2.0",
		ProtoMajor:    2,
	}
	u, err := url.ParseRequestURI(string(req.ForwardTarget(nil)))
	if err != nil {
		return nil, err
	}
	hr.URL.Path, hr.URL.RawPath, hr.URL.RawQuery = u.Path, u.RawPath, u.RawQuery
	t, hasTrailers := body.(trailered)
	hasTrailers = hasTrailers && req.ContentLength != 0
	if hasTrailers {
		// A non-nil Trailer makes the transport end the stream with the
		// fields put in it when the body ends; its keys are declared in
		// the head, as the client declared them.
		hr.Trailer = http.Header{}
	}
	for i := 0; i < req.Header.Len(); i++ {
		name, value := req.Header.Field(i)
		switch {
		case httphead.EqualFold(name, "Host"):
		case httphead.EqualFold(name, "Trailer"):
			for _, n := range strings.Split(string(value), ",") {
				if n = strings.TrimSpace(n); hasTrailers && httphead.IsToken([]byte(n)) {
					hr.Trailer[http.CanonicalHeaderKey(n)] = nil
				}
			}
		default:
			hr.Header.Add(string(name), string(value))
		}
	}
	if body != nil && req.ContentLength != 0 {
		hr.Body = io.NopCloser(body)
		if hasTrailers {
			hr.Body = &trailerBody{r: body, src: t, dst: hr.Trailer}
		}
		if req.ContentLength < 0 {
			hr.ContentLength = -1
		}
	} else {
		hr.ContentLength = 0
	}
	hr = hr.WithContext(ctx)
	hresp, err := c.t.RoundTrip(hr)
	if h, ok := body.(headWaiter); ok {
		h.HeadReceived()
	}
	if err != nil {
		return nil, err
	}
	resp.Status = hresp.StatusCode
	resp.ProtoMajor, resp.ProtoMinor = 2, 0
	resp.ContentLength = hresp.ContentLength
	resp.Header.AddMap(hresp.Header)
	return &body2{ReadCloser: hresp.Body, resp: hresp}, nil
}

// trailered is a request body that carries a trailer section at its end
// (proxy.Trailered).
type trailered interface{ Trailers() *httphead.Header }

// headWaiter is a request body told when the response head has come: the
// transport reads the body on a goroutine of its own, and the body's end
// may run phases of the request only while the request waits for the head
// (the proxy engine's request body).
type headWaiter interface{ HeadReceived() }

// trailerBody hands the request's trailer section to the transport when
// the body ends.
type trailerBody struct {
	r   io.Reader
	src trailered
	dst http.Header
}

func (b *trailerBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		if t := b.src.Trailers(); t != nil {
			for i := 0; i < t.Len(); i++ {
				name, value := t.Field(i)
				b.dst.Add(string(name), string(value))
			}
		}
	}
	return n, err
}

func (b *trailerBody) Close() error { return nil }

// body2 is a response body whose trailers are readable after EOF.
type body2 struct {
	io.ReadCloser
	resp     *http.Response
	trailers httphead.Header
}

func (b *body2) Trailers() *httphead.Header {
	b.trailers.Reset()
	b.trailers.AddMap(b.resp.Trailer)
	return &b.trailers
}

// CloseIdle closes idle connections (on config reload).
func (c *Client) CloseIdle() { c.t.CloseIdleConnections() }
