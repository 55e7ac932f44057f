package h2

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/url"
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
	for i := 0; i < req.Header.Len(); i++ {
		name, value := req.Header.Field(i)
		if httphead.EqualFold(name, "Host") {
			continue
		}
		hr.Header.Add(string(name), string(value))
	}
	if body != nil && req.ContentLength != 0 {
		hr.Body = io.NopCloser(body)
		if req.ContentLength < 0 {
			hr.ContentLength = -1
		}
	} else {
		hr.ContentLength = 0
	}
	hr = hr.WithContext(ctx)
	hresp, err := c.t.RoundTrip(hr)
	if err != nil {
		return nil, err
	}
	resp.Status = hresp.StatusCode
	resp.ProtoMajor, resp.ProtoMinor = 2, 0
	resp.ContentLength = hresp.ContentLength
	for name, values := range hresp.Header {
		for _, v := range values {
			resp.Header.AddString(name, v)
		}
	}
	return &body2{ReadCloser: hresp.Body, resp: hresp}, nil
}

// body2 is a response body whose trailers are readable after EOF.
type body2 struct {
	io.ReadCloser
	resp     *http.Response
	trailers httphead.Header
}

func (b *body2) Trailers() *httphead.Header {
	b.trailers.Reset()
	for name, values := range b.resp.Trailer {
		for _, v := range values {
			b.trailers.AddString(name, v)
		}
	}
	return &b.trailers
}

// CloseIdle closes idle connections (on config reload).
func (c *Client) CloseIdle() { c.t.CloseIdleConnections() }
