package fiddle

import (
	"bytes"
	"crypto/tls"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// clock is the run's virtual clock: the cache reads it; it moves only
// when a step says so.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// session is a proxy.Session in memory: the request comes parsed by the
// production HTTP/1.1 codec, the response is recorded.
type session struct {
	req    httphead.Request
	body   io.Reader
	client netip.AddrPort
	tls    *tls.ConnectionState
	ja4    string

	status  int
	headers map[string]string
	out     bytes.Buffer
	n       int64
}

func (s *session) Request() *httphead.Request { return &s.req }
func (s *session) Body() io.Reader            { return s.body }
func (s *session) ClientAddr() netip.AddrPort { return s.client }
func (s *session) TLS() *tls.ConnectionState  { return s.tls }
func (s *session) JA4() string                { return s.ja4 }

func (s *session) WriteHead(resp *httphead.Response) error {
	s.status = resp.Status
	s.headers = headerMap(&resp.Header)
	delete(s.headers, "Transfer-Encoding")
	if resp.ContentLength >= 0 {
		s.headers["Content-Length"] = itoa(resp.ContentLength)
	}
	return nil
}

func (s *session) Write(p []byte) (int, error) {
	s.n += int64(len(p))
	if room := bodyPreview - s.out.Len(); room > 0 {
		s.out.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (s *session) Finish(*httphead.Header) error { return nil }

func (s *session) Upgrade() (io.ReadWriteCloser, error) { return nil, proxy.ErrUpgradeUnsupported }

// headerMap flattens a header, joining repeated fields with ", ".
func headerMap(h *httphead.Header) map[string]string {
	m := make(map[string]string, h.Len())
	for i := range h.Len() {
		name, value := h.Field(i)
		k := string(name)
		if prev, ok := m[k]; ok {
			m[k] = prev + ", " + string(value)
		} else {
			m[k] = string(value)
		}
	}
	return m
}
