package health

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
)

// HTTP probes with a GET request on a new connection and expects a status
// within [MinStatus, MaxStatus]. The zero value GETs "/" over plain HTTP and
// accepts 200-399.
type HTTP struct {
	// Path is the request path and query; a missing leading slash is
	// added. Default "/".
	Path string
	// Host is the Host header. Default: the server address.
	Host string
	// MinStatus and MaxStatus bound the healthy statuses. Defaults 200
	// and 399.
	MinStatus, MaxStatus int
	// TLS, when set, makes the probe use HTTPS with this configuration.
	TLS *tls.Config

	once   sync.Once
	client *http.Client
}

var _ Probe = (*HTTP)(nil)

// Probe implements Probe.
func (h *HTTP) Probe(ctx context.Context, addr string) error {
	h.once.Do(func() {
		h.client = &http.Client{
			Transport: &http.Transport{
				// Each check opens its own connection: a pooled one
				// would hide a server that no longer accepts.
				DisableKeepAlives: true,
				TLSClientConfig:   h.TLS,
			},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	})
	scheme := "http"
	if h.TLS != nil {
		scheme = "https"
	}
	path := h.Path
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+path, nil)
	if err != nil {
		return fmt.Errorf("health check of %s: %w", addr, err)
	}
	req.Host = h.Host
	req.Header.Set("User-Agent", "outpost-health-check")
	resp, err := h.client.Do(req)
	if err != nil {
		return fmt.Errorf("health check of %s: %w", addr, err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if lo, hi := cmp.Or(h.MinStatus, 200), cmp.Or(h.MaxStatus, 399); resp.StatusCode < lo || resp.StatusCode > hi {
		return fmt.Errorf("health check of %s: %w %d, want %d-%d", addr, ErrStatus, resp.StatusCode, lo, hi)
	}
	return nil
}

// ErrStatus is the error of an HTTP probe answered with a status outside the
// healthy range.
var ErrStatus = errors.New("unexpected status")

// TCP probes by opening a TCP connection and closing it.
type TCP struct{}

var _ Probe = TCP{}

// Probe implements Probe.
func (TCP) Probe(ctx context.Context, addr string) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("health check of %s: %w", addr, err)
	}
	return conn.Close()
}
