package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/certs"
	"github.com/outpost-edge/outpost/client"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/h2"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/pool"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/stats"
	"github.com/outpost-edge/outpost/upstream"
	"github.com/outpost-edge/outpost/upstream/health"
)

// backend is a config upstream as a proxy.Upstream: server selection,
// outlier detection and budgets from package upstream, connections from
// package client (HTTP/1.1 over a shared pool) or h2 (HTTP/2).
type backend struct {
	name    string
	cfg     *config.Upstream
	b       *upstream.Backend
	pool    *pool.Pool
	h1      *client.Transport
	h2      *h2.Client
	sticky  *upstream.Sticky
	tls     *tls.Config // client TLS to the servers; nil for cleartext
	health  *health.Checker
	peers   sync.Map // addr -> *peer
	cancel  context.CancelFunc
	backup  *backend // failover target, set by Build
	retryOn config.RetryConditions
}

// peer is one server of a backend as a proxy.Peer.
type peer struct {
	b       *backend
	srv     *upstream.Server
	latency stats.Histogram
}

// attempt is a request's walk over a backend's servers; it lives in the
// request's Ctx and is reused by the connection's next request.
type attempt struct {
	it       upstream.Iter
	b        *backend // the backend the walk began on
	began    bool
	failover bool // the walk moved to the backup upstream
}

func (s *Shared) backend(name string, cfg *config.Upstream) (*backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.backends[name]; ok && sameConnections(b.cfg, cfg) {
		// Keep the pool and the servers' runtime state across a reload;
		// take the new selection and retry settings.
		b.cfg, b.retryOn = cfg, cfg.Retries.Conditions
		err := b.b.SetServers(serversOf(cfg))
		b.syncHealthTargets()
		return b, err
	} else if ok {
		b.close()
	}
	b, err := newBackend(s.ctx, name, cfg, s)
	if err != nil {
		return nil, err
	}
	s.backends[name] = b
	return b, nil
}

// sameConnections reports whether a reload can keep a backend's
// connections: same protocol, TLS and pool limits.
func sameConnections(a, b *config.Upstream) bool {
	return a.Protocol == b.Protocol && a.TLS == b.TLS && a.MaxIdlePerServer == b.MaxIdlePerServer &&
		a.MaxConnsPerServer == b.MaxConnsPerServer && a.IdleTimeout == b.IdleTimeout &&
		a.ConnectTimeout == b.ConnectTimeout && a.FirstByteTimeout == b.FirstByteTimeout &&
		a.Balance == b.Balance && a.Circuit == b.Circuit && a.Passive == b.Passive &&
		a.Health == b.Health && (a.DNS == nil) == (b.DNS == nil) && (a.DNS == nil || *a.DNS == *b.DNS)
}

func newBackend(ctx context.Context, name string, cfg *config.Upstream, s *Shared) (*backend, error) {
	ub, err := upstream.New(upstream.Config{
		Name:   name,
		Policy: policyFor(cfg.Balance),
		Outlier: upstream.Outlier{
			Consecutive:       orNegative(cfg.Passive.ConsecutiveFailures),
			BaseEjection:      cfg.Passive.EjectTime,
			MaxEjectedPercent: cfg.Passive.MaxEjectedPercent,
		},
		Limits: upstream.Limits{MaxConcurrent: cfg.Circuit.MaxConcurrent, MaxPending: cfg.Circuit.MaxPending},
		Budget: upstream.Budget{Ratio: cfg.Retries.BudgetRatio},
		Log:    s.Log,
	}, serversOf(cfg))
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, cfg: cfg, b: ub, retryOn: cfg.Retries.Conditions}
	if cfg.StickyCookie != "" {
		b.sticky = &upstream.Sticky{Cookie: cfg.StickyCookie}
	}
	var tlsConf *tls.Config
	if cfg.TLS.Enabled {
		if tlsConf, err = certs.ClientConfig(cfg.TLS.SNI, cfg.TLS.Verify, cfg.TLS.CA, cfg.TLS.ClientCert, cfg.TLS.ClientKey); err != nil {
			return nil, err
		}
	}
	b.tls = tlsConf
	switch cfg.Protocol {
	case config.ProtocolH2, config.ProtocolH2C:
		if cfg.Protocol == config.ProtocolH2C {
			tlsConf = nil
		}
		b.h2 = h2.NewClient(tlsConf, cfg.ConnectTimeout)
	default:
		b.pool = pool.New(pool.Config{MaxIdle: cfg.MaxIdlePerServer, IdleTimeout: cfg.IdleTimeout, MaxConns: cfg.MaxConnsPerServer})
		b.h1 = &client.Transport{
			Pool:             b.pool,
			TLS:              tlsConf,
			ConnectTimeout:   cfg.ConnectTimeout,
			FirstByteTimeout: cfg.FirstByteTimeout,
		}
	}
	ctx, b.cancel = context.WithCancel(ctx)
	b.startDiscovery(ctx, s)
	b.startHealth(ctx, s)
	return b, nil
}

func orNegative(n int) int {
	if n == 0 {
		return -1 // config's 0 turns ejection off; upstream's 0 means default
	}
	return n
}

func policyFor(b config.Balance) upstream.Policy {
	switch b {
	case config.BalanceWeighted:
		return upstream.WeightedRoundRobin{}
	case config.BalanceRandom:
		return upstream.Random{}
	case config.BalanceHash:
		return upstream.Ketama{}
	case config.BalanceLeastRequest:
		return upstream.LeastRequest{}
	case config.BalancePeakEWMA:
		return upstream.PeakEWMA{}
	}
	return upstream.RoundRobin{}
}

func serversOf(cfg *config.Upstream) []*upstream.Server {
	out := make([]*upstream.Server, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		out = append(out, &upstream.Server{Addr: s.Addr, Weight: s.Weight, Backup: s.Backup})
	}
	return out
}

func (b *backend) close() {
	b.cancel()
	if b.pool != nil {
		b.pool.Close()
	}
	if b.h2 != nil {
		b.h2.CloseIdle()
	}
}

// peerFor returns the stable Peer of a server.
func (b *backend) peerFor(s *upstream.Server) *peer {
	if p, ok := b.peers.Load(s.Addr); ok {
		pp := p.(*peer)
		pp.srv = s
		return pp
	}
	p, _ := b.peers.LoadOrStore(s.Addr, &peer{b: b, srv: s})
	return p.(*peer)
}

func attemptOf(c *proxy.Ctx) *attempt {
	a, ok := c.Slot.(*attempt)
	if !ok {
		a = &attempt{}
		c.Slot = a
	}
	return a
}

// Pick implements proxy.Upstream.
func (b *backend) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	a := attemptOf(c)
	if n == 0 {
		a.failover = false
		if err := b.begin(c, a); err != nil {
			return nil, err
		}
	}
	cur := a.b
	s, err := a.it.Next()
	if err != nil && !a.failover && b.backup != nil {
		// No server of this upstream can take it: the backup upstream.
		a.it.End()
		a.failover = true
		c.Trace.Add("failover", b.backup.name)
		if err = b.backup.begin(c, a); err == nil {
			cur = a.b
			s, err = a.it.Next()
		}
	}
	if err != nil {
		a.it.End()
		a.began = false
		return nil, noServerErr(err)
	}
	return cur.peerFor(s), nil
}

func (b *backend) begin(c *proxy.Ctx, a *attempt) error {
	if err := b.b.Begin(c, &a.it, b.hashKey(c)); err != nil {
		return noServerErr(err)
	}
	a.b, a.began = b, true
	if b.sticky != nil {
		if id, ok := b.sticky.FromCookieHeader(c.Request.Header.Peek("Cookie")); ok {
			a.it.Prefer(id)
		}
	}
	return nil
}

func noServerErr(err error) error {
	switch {
	case errors.Is(err, upstream.ErrCircuitOpen):
		return proxy.Errorf(503, proxy.FromUpstream, "upstream overloaded", err)
	case errors.Is(err, upstream.ErrRetryBudget):
		return proxy.Errorf(503, proxy.FromUpstream, "upstream failing: retry budget spent", err)
	case errors.Is(err, context.Canceled):
		return proxy.Errorf(499, proxy.FromDownstream, "client went away", err)
	}
	return proxy.Errorf(503, proxy.FromUpstream, "no healthy upstream server", err)
}

// Finish implements proxy.Upstream: it reports the outcome and decides
// whether another server should be tried.
func (b *backend) Finish(c *proxy.Ctx, pp proxy.Peer, n int, resp *httphead.Response, err error, took time.Duration) bool {
	a := attemptOf(c)
	p := pp.(*peer)
	out := outcome(resp, err)
	p.b.b.Report(p.srv, out, took)
	p.latency.Observe(took)
	retry := p.b.retryable(c, n, resp, err)
	if !retry && resp != nil && !a.failover && b.backup != nil && failoverStatus(b.cfg, resp.Status) {
		a.it.End()
		a.failover = true
		c.Trace.Add("failover", b.backup.name+" on "+statusText(resp.Status))
		if b.backup.begin(c, a) == nil {
			return true
		}
	}
	if !retry {
		a.it.End()
		a.began = false
		if b.sticky != nil && resp != nil {
			id, ok := b.sticky.FromCookieHeader(c.Request.Header.Peek("Cookie"))
			if b.sticky.NeedsCookie(id, ok, p.srv) {
				resp.Header.Add(setCookie, b.sticky.AppendSetCookie(nil, p.srv))
			}
		}
	}
	return retry
}

var setCookie = []byte("Set-Cookie")

func failoverStatus(cfg *config.Upstream, status int) bool {
	for _, s := range cfg.Failover.OnStatus {
		if s == status {
			return true
		}
	}
	return false
}

// retryable decides whether attempt n's failure is worth another server.
func (b *backend) retryable(c *proxy.Ctx, n int, resp *httphead.Response, err error) bool {
	r := &b.cfg.Retries
	if n >= r.Max {
		return false
	}
	req := c.Request
	hasBody := req.ContentLength != 0 || req.Chunked
	if err != nil {
		var ce *client.Error
		sentNothing := errors.As(err, &ce) && ce.BeforeWrite
		switch {
		case hasBody && !sentNothing:
			return false // the body is gone: it cannot be sent again
		case sentNothing:
			return b.retryOn.Connect
		case isTimeout(err):
			return b.retryOn.Timeout && idempotentOK(r, req)
		case errors.Is(err, context.Canceled):
			return false
		}
		return b.retryOn.Reset && idempotentOK(r, req)
	}
	if hasBody || !idempotentOK(r, req) {
		return false
	}
	for _, s := range b.retryOn.Statuses {
		if s == resp.Status {
			return true
		}
	}
	return false
}

func idempotentOK(r *config.Retries, req *httphead.Request) bool {
	if !r.IdempotentOnly {
		return true
	}
	switch string(req.Method) {
	case "GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE":
		return true
	}
	return false
}

func outcome(resp *httphead.Response, err error) upstream.Outcome {
	switch {
	case err == nil && resp.Status >= 500:
		return upstream.ServerError
	case err == nil:
		return upstream.Success
	case errors.Is(err, context.Canceled):
		return upstream.Canceled
	case isTimeout(err):
		return upstream.Timeout
	}
	return upstream.ConnectError
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, client.ErrTimeout) || errors.As(err, &ne) && ne.Timeout()
}

// hashKey computes the consistent-hashing key of a request.
func (b *backend) hashKey(c *proxy.Ctx) uint64 {
	if b.cfg.Balance != config.BalanceHash {
		return 0
	}
	k := b.cfg.HashKey
	switch k.Kind {
	case config.KeyClientIP:
		ip := c.Client.Addr().Unmap().As16()
		return upstream.HashKey(ip[:])
	case config.KeyHeader:
		return upstream.HashKey(c.Request.Header.Peek(k.Name))
	case config.KeyCookie:
		return upstream.HashKey(httphead.CookieValue(c.Request.Header.Peek("Cookie"), k.Name))
	}
	return upstream.HashKey(c.Request.Target)
}

// Addr implements proxy.Peer.
func (p *peer) Addr() string { return p.srv.Addr }

// RoundTrip implements proxy.Peer.
func (p *peer) RoundTrip(c *proxy.Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	if p.b.h2 != nil {
		return p.b.h2.RoundTrip(c, p.srv.Addr, req, body, resp)
	}
	return p.b.h1.RoundTrip(c, p.srv.Addr, req, body, resp)
}

func (b *backend) metrics(name string) []metrics.Server {
	var out []metrics.Server
	for _, st := range b.b.Stats(nil) {
		ms := metrics.Server{
			Upstream: name, Addr: st.Addr, Requests: st.Requests, Errors: st.Errors,
			Healthy: st.Healthy && !st.Ejected, Latency: &b.peerFor(b.b.Server(st.Addr)).latency,
		}
		if b.pool != nil {
			ps := b.pool.Stats(b.h1.PoolKey(st.Addr))
			ms.Dials, ms.Reuses = ps.Dials, ps.Reuses
		}
		out = append(out, ms)
	}
	return out
}

func (b *backend) stats() map[string]any {
	servers := map[string]any{}
	for _, st := range b.b.Stats(nil) {
		servers[st.Addr] = st
	}
	out := map[string]any{"servers": servers}
	if b.pool != nil {
		out["connections"] = b.pool.Totals()
	}
	return out
}

func statusText(s int) string { return fmt.Sprint(s) }
