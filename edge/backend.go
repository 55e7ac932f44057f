package edge

import (
	"context"
	"crypto/tls"
	"errors"
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
	retry   upstream.Retry
}

// peer is one server address of a backend as a proxy.Peer. Peers are
// shared by every request; the per-request choice lives in attempt.
type peer struct {
	b       *backend
	addr    string
	latency stats.Histogram
}

// attempt is a request's walk over a backend's servers; it lives in the
// connection state and is reused by the connection's next request.
type attempt struct {
	it       upstream.Iter
	b        *backend         // the backend the walk is on
	srv      *upstream.Server // the server of the attempt in progress
	failover bool             // the walk moved to the backup upstream
}

func (s *Shared) backend(name string, cfg *config.Upstream) (*backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.backends[name]; ok && sameConnections(b.cfg, cfg) {
		// Keep the pool and the servers' runtime state across a reload;
		// take the new selection and retry settings.
		b.cfg, b.retryOn, b.retry = cfg, cfg.Retries.Conditions, retryOf(&cfg.Retries)
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
	b := &backend{name: name, cfg: cfg, b: ub, retryOn: cfg.Retries.Conditions, retry: retryOf(&cfg.Retries)}
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

// retryOf maps the config's retry settings onto upstream.Retry. A body
// once sent cannot be sent again (it is streamed, not buffered), so
// AfterBodySent stays off whatever retry_with_body says.
func retryOf(r *config.Retries) upstream.Retry {
	statuses := r.Conditions.Statuses
	if statuses == nil {
		statuses = []int{} // an explicit empty list: no status is retried
	}
	return upstream.Retry{
		MaxAttempts:   r.Max + 1,
		Statuses:      statuses,
		Timeouts:      r.Conditions.Timeout,
		NonIdempotent: !r.IdempotentOnly,
		Backoff:       5 * time.Millisecond,
		MaxBackoff:    100 * time.Millisecond,
	}
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

// peerFor returns the stable Peer of a server address.
func (b *backend) peerFor(addr string) *peer {
	if p, ok := b.peers.Load(addr); ok {
		return p.(*peer)
	}
	p, _ := b.peers.LoadOrStore(addr, &peer{b: b, addr: addr})
	return p.(*peer)
}

func attemptOf(c *proxy.Ctx) *attempt { return &stateOf(c).attempt }

// Pick implements proxy.Upstream.
func (b *backend) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	a := attemptOf(c)
	if n == 0 {
		a.failover = false
		if err := b.begin(c, a); err != nil {
			return nil, err
		}
	}
	s, err := a.it.Next()
	if err != nil && !a.failover && b.backup != nil {
		// No server of this upstream can take it: the backup upstream.
		a.it.End()
		a.failover = true
		c.Trace.Add("failover", b.backup.name)
		if err = b.backup.begin(c, a); err == nil {
			s, err = a.it.Next()
		}
	}
	if err != nil {
		a.it.End()
		return nil, noServerErr(err)
	}
	a.srv = s
	return a.b.peerFor(s.Addr), nil
}

func (b *backend) begin(c *proxy.Ctx, a *attempt) error {
	if err := b.b.Begin(c, &a.it, b.hashKey(c)); err != nil {
		return noServerErr(err)
	}
	a.b = b
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
	cur := a.b
	out, bodySent := outcome(c.Request, resp, err)
	a.it.Report(a.srv, out, took)
	pp.(*peer).latency.Observe(took)
	why := cur.decide(c, n, out, resp, bodySent)
	if why.Retry() {
		c.Trace.Add("retry-why", why.String())
		if why != upstream.RetryConnect {
			time.Sleep(cur.retry.Wait(n + 1))
		}
		return true
	}
	if resp != nil && !a.failover && cur.backup != nil && failoverStatus(cur.cfg, resp.Status) {
		a.it.End()
		a.failover = true
		c.Trace.Add("failover", cur.backup.name)
		if cur.backup.begin(c, a) == nil {
			return true
		}
	}
	a.it.End()
	if cur.sticky != nil && resp != nil {
		id, ok := cur.sticky.FromCookieHeader(c.Request.Header.Peek("Cookie"))
		if cur.sticky.NeedsCookie(id, ok, a.srv) {
			c.Buf = cur.sticky.AppendSetCookie(c.Buf[:0], a.srv)
			resp.Header.Add(setCookie, c.Buf)
		}
	}
	return false
}

// decide applies the retry policy, with the config's say on whether
// connect failures and resets are retried at all.
func (b *backend) decide(c *proxy.Ctx, n int, out upstream.Outcome, resp *httphead.Response, bodySent bool) upstream.RetryReason {
	if out == upstream.ConnectError && !b.retryOn.Connect || out == upstream.Reset && !b.retryOn.Reset {
		return upstream.NoRetryOutcome
	}
	status := 0
	if resp != nil {
		status = resp.Status
	}
	return b.retry.Decide(upstream.Attempt{
		N: n + 1, Outcome: out, Status: status,
		Idempotent: upstream.Idempotent(c.Request.Method), BodySent: bodySent,
	})
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

// outcome judges an attempt, and says whether request body bytes may
// have reached the server.
func outcome(req *httphead.Request, resp *httphead.Response, err error) (upstream.Outcome, bool) {
	hasBody := req.ContentLength != 0 || req.Chunked
	if err == nil {
		if resp.Status >= 500 {
			return upstream.ServerError, hasBody
		}
		return upstream.Success, hasBody
	}
	var ce *client.Error
	sentNothing := errors.As(err, &ce) && ce.BeforeWrite
	switch {
	case errors.Is(err, context.Canceled):
		return upstream.Canceled, hasBody && !sentNothing
	case sentNothing:
		return upstream.ConnectError, false
	case isTimeout(err):
		return upstream.Timeout, hasBody
	}
	return upstream.Reset, hasBody
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
func (p *peer) Addr() string { return p.addr }

// RoundTrip implements proxy.Peer.
func (p *peer) RoundTrip(c *proxy.Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	if p.b.h2 != nil {
		return p.b.h2.RoundTrip(c, p.addr, req, body, resp)
	}
	return p.b.h1.RoundTrip(c, p.addr, req, body, resp)
}

func (b *backend) metrics(name string) []metrics.Server {
	var out []metrics.Server
	for _, st := range b.b.Stats(nil) {
		ms := metrics.Server{
			Upstream: name, Addr: st.Addr, Requests: st.Requests, Errors: st.Errors,
			Healthy: st.Healthy && !st.Ejected, Latency: &b.peerFor(st.Addr).latency,
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
