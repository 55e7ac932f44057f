package edge

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
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
	name   string
	conf   atomic.Pointer[settings] // swapped by a reload while requests read it
	backup atomic.Pointer[backend]  // failover target; nil: none (see linkFailover)
	// replaced is the backend that a reload built in place of this one;
	// requests still routed here start there instead (see Pick).
	replaced atomic.Pointer[backend]
	b        *upstream.Backend
	pool     *pool.Pool
	h1       *client.Transport
	h2       *h2.Client
	tls      *tls.Config // client TLS to the servers; nil for cleartext
	health   *health.Checker
	// peers holds the Peer of each server address: those of the current
	// servers, and of servers gone since the last change that requests
	// picked before it (serversChanged drops them).
	peers  sync.Map        // addr -> *peer
	ctx    context.Context // ends with close; background work runs under it
	cancel context.CancelFunc
	disc   *discovery // DNS discovery; nil when off. Guarded by Shared.mu.
}

// settings are what a reload may change without new connections. A
// decision reads them once; a request may see the old settings in Pick and
// the new ones in Finish, and either is valid.
type settings struct {
	cfg    *config.Upstream
	retry  upstream.Retry
	sticky *upstream.Sticky // nil: no sticky sessions
}

func settingsOf(cfg *config.Upstream) *settings {
	st := &settings{cfg: cfg, retry: retryOf(&cfg.Retries)}
	if cfg.StickyCookie != "" {
		st.sticky = &upstream.Sticky{Cookie: cfg.StickyCookie}
	}
	return st
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
	owner    string           // the node filled from first, when sharded (see shard.go)
	shield   string           // the shield asked first (see shield.go)
}

func (s *Shared) backend(name string, cfg *config.Upstream) (*backend, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.backends[name]
	if ok && sameConnections(b.settings().cfg, cfg) {
		// Keep the pool and the servers' runtime state across a reload;
		// take the new selection, limits, retry and server settings.
		if err := b.reconfigure(cfg, s.Log); err != nil {
			return nil, err
		}
	} else {
		nb, err := newBackend(s.ctx, name, cfg, s)
		if err != nil {
			return nil, err
		}
		if ok {
			b.replaced.Store(nb)
			b.close()
		}
		b = nb
		s.backends[name] = b
	}
	s.linkFailover()
	return b, nil
}

// linkFailover points every backend at its failover backend. Backends are
// built one by one in any order, so each call relinks them all: whichever
// end of a link comes last completes it. The caller holds s.mu.
func (s *Shared) linkFailover() {
	for _, b := range s.backends {
		b.backup.Store(s.backends[b.settings().cfg.Failover.BackupUpstream])
	}
}

// sameConnections reports whether a reload can keep a backend's
// connections and background work: same protocol, TLS, pool limits,
// health checks and DNS discovery.
func sameConnections(a, b *config.Upstream) bool {
	return a.Protocol == b.Protocol && a.TLS == b.TLS && a.MaxIdlePerServer == b.MaxIdlePerServer &&
		a.MaxConnsPerServer == b.MaxConnsPerServer && a.IdleTimeout == b.IdleTimeout &&
		a.ConnectTimeout == b.ConnectTimeout && a.FirstByteTimeout == b.FirstByteTimeout &&
		a.Health == b.Health && (a.DNS == nil) == (b.DNS == nil) && (a.DNS == nil || *a.DNS == *b.DNS)
}

// upstreamConfig maps the config onto package upstream's settings.
func upstreamConfig(name string, cfg *config.Upstream, log *slog.Logger) upstream.Config {
	return upstream.Config{
		Name:   name,
		Policy: policyFor(cfg.Balance),
		Outlier: upstream.Outlier{
			Consecutive:       orNegative(cfg.Passive.ConsecutiveFailures),
			BaseEjection:      cfg.Passive.EjectTime,
			MaxEjectedPercent: cfg.Passive.MaxEjectedPercent,
		},
		Limits: upstream.Limits{MaxConcurrent: cfg.Circuit.MaxConcurrent, MaxPending: cfg.Circuit.MaxPending},
		Budget: upstream.Budget{Ratio: cfg.Retries.BudgetRatio},
		Log:    log,
	}
}

// reconfigure applies a reloaded config to a backend whose connections
// stay: requests in flight finish on the servers they chose.
func (b *backend) reconfigure(cfg *config.Upstream, log *slog.Logger) error {
	if err := b.b.Reconfigure(upstreamConfig(b.name, cfg, log)); err != nil {
		return err
	}
	b.conf.Store(settingsOf(cfg))
	if cfg.DNS != nil {
		// The servers come from resolving the new names, not from
		// the names themselves.
		b.startDiscovery(cfg, log)
		return nil
	}
	if err := b.b.SetServers(serversOf(cfg)); err != nil {
		return err
	}
	b.serversChanged()
	return nil
}

// serversChanged makes what the backend keeps per server follow its
// servers after a reload or a discovery round: health checks, peers and
// pooled connections. The tables hold the current servers, plus for a
// moment those that requests in flight picked before the change.
func (b *backend) serversChanged() {
	b.syncHealthTargets()
	b.peers.Range(func(addr, _ any) bool {
		if b.b.Server(addr.(string)) == nil {
			b.peers.Delete(addr)
		}
		return true
	})
	if b.pool != nil {
		b.pool.Retain(func(k pool.Key) bool { return b.b.Server(k.Addr) != nil })
	}
}

func (b *backend) settings() *settings { return b.conf.Load() }

// successor returns the backend that reloads put in place of b, or nil
// while b is current.
func (b *backend) successor() *backend {
	nb := b.replaced.Load()
	for nb != nil {
		next := nb.replaced.Load()
		if next == nil {
			break
		}
		nb = next
	}
	return nb
}

func newBackend(ctx context.Context, name string, cfg *config.Upstream, s *Shared) (*backend, error) {
	ub, err := upstream.New(upstreamConfig(name, cfg, s.Log), serversOf(cfg))
	if err != nil {
		return nil, err
	}
	b := &backend{name: name, b: ub}
	b.conf.Store(settingsOf(cfg))
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
	b.ctx, b.cancel = context.WithCancel(ctx)
	b.startDiscovery(cfg, s.Log)
	b.startHealth(s)
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

// Pick implements proxy.Upstream. Every choice goes into the trace: the
// attempt number (the engine adds the server), whether a sticky cookie was
// honoured, and a move to the failover upstream.
func (b *backend) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	a := attemptOf(c)
	if n == 0 {
		if nb := b.successor(); nb != nil {
			// The request was routed here just before a reload closed
			// this backend's connections: the replacement takes it.
			return nb.Pick(c, 0)
		}
		a.failover = false
		if err := b.begin(c, a); err != nil {
			return nil, err
		}
	}
	s, err := a.it.Next()
	if err != nil && !a.failover {
		// No server of this upstream can take it: the failover upstream.
		if backup := a.b.backup.Load(); backup != nil {
			a.it.End()
			a.failover = true
			c.Trace.Add("failover", backup.name)
			if err = backup.begin(c, a); err == nil {
				s, err = a.it.Next()
			}
		}
	}
	if err != nil {
		a.it.End()
		return nil, noServerErr(err)
	}
	a.srv = s
	c.Trace.Add("attempt", strconv.Itoa(n+1)) // constant strings below 100: no allocation
	if s.Backup {
		c.Trace.Add("group", "backup")
	}
	return a.b.peerFor(s.Addr), nil
}

func (b *backend) begin(c *proxy.Ctx, a *attempt) error {
	st := b.settings()
	if err := b.b.Begin(c, &a.it, hashKey(st.cfg, c)); err != nil {
		return noServerErr(err)
	}
	a.b = b
	if st.sticky != nil {
		if id, ok := st.sticky.FromCookieHeader(c.Request.Header.Peek("Cookie")); ok {
			if a.it.Prefer(id) {
				c.Trace.Add("sticky", "honoured")
			} else {
				c.Trace.Add("sticky", "server unusable")
			}
		}
	}
	return nil
}

func noServerErr(err error) error {
	var pe *proxy.Error
	switch {
	case errors.As(err, &pe):
		return err
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
// whether another server should be tried, tracing why.
func (b *backend) Finish(c *proxy.Ctx, pp proxy.Peer, n int, resp *httphead.Response, err error, took time.Duration) bool {
	a := attemptOf(c)
	cur := a.b
	st := cur.settings()
	out, bodySent := outcome(c.Request, resp, err)
	if c.Route.Replayable(c.Request) {
		bodySent = false // the engine kept the body: it can be sent again
	}
	a.it.Report(a.srv, out, took)
	pp.(*peer).latency.Observe(took)
	if errors.Is(err, pool.ErrClosed) {
		// A reload closed the pool between Pick and the attempt; the
		// backend that replaced this one has open connections.
		if nb := cur.successor(); nb != nil {
			a.it.End()
			if nb.begin(c, a) == nil {
				c.Trace.Add("retry-why", "reload")
				return true
			}
		}
	}
	why := decide(st, c, n, out, resp, bodySent)
	if why.Retry() {
		c.Trace.Add("retry-why", why.String())
		if why != upstream.RetryConnect {
			pause(c, st.retry.Wait(n+1))
		}
		return true
	}
	if out != upstream.Success && out != upstream.Canceled {
		c.Trace.Add("no-retry", why.String())
	}
	// The backup upstream takes a request this one could not answer: no
	// response at all once retries are spent (and nothing was lost on
	// the way: the body is unsent or kept), or a status chosen for it.
	noAnswer := resp == nil && (out == upstream.ConnectError || out == upstream.Reset || out == upstream.Timeout) && !bodySent
	if !a.failover && (noAnswer || resp != nil && failoverStatus(st.cfg, resp.Status)) {
		if backup := cur.backup.Load(); backup != nil {
			a.it.End()
			a.failover = true
			c.Trace.Add("failover", backup.name)
			if backup.begin(c, a) == nil {
				return true
			}
		}
	}
	a.it.End()
	if st.sticky != nil && resp != nil {
		id, ok := st.sticky.FromCookieHeader(c.Request.Header.Peek("Cookie"))
		if st.sticky.NeedsCookie(id, ok, a.srv) {
			c.Buf = st.sticky.AppendSetCookie(c.Buf[:0], a.srv)
			resp.Header.Add(setCookie, c.Buf)
		}
	}
	return false
}

// pause waits d before a retry, or less if the request ends first.
// Retries are rare, so the timer's allocation does not matter.
func pause(c *proxy.Ctx, d time.Duration) {
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.Done():
	}
}

// decide applies the retry policy, with the config's say on whether
// connect failures and resets are retried at all.
func decide(st *settings, c *proxy.Ctx, n int, out upstream.Outcome, resp *httphead.Response, bodySent bool) upstream.RetryReason {
	on := &st.cfg.Retries.Conditions
	if out == upstream.ConnectError && !on.Connect || out == upstream.Reset && !on.Reset {
		return upstream.NoRetryOutcome
	}
	status := 0
	if resp != nil {
		status = resp.Status
	}
	return st.retry.Decide(upstream.Attempt{
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
func hashKey(cfg *config.Upstream, c *proxy.Ctx) uint64 {
	if cfg.Balance != config.BalanceHash {
		return 0
	}
	k := cfg.HashKey
	switch k.Kind {
	case config.KeyClientIP:
		ip := c.Client.Addr().Unmap().As16()
		return upstream.HashKey(ip[:])
	case config.KeyHeader:
		return upstream.HashKey(c.Request.Header.Peek(k.Name))
	case config.KeyCookie:
		return upstream.HashKey(httphead.CookieValue(c.Request.Header.Peek("Cookie"), k.Name))
	}
	c.Buf = c.Request.AppendPathQuery(c.Buf[:0])
	return upstream.HashKey(c.Buf)
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
			Latency: &b.peerFor(st.Addr).latency, Healthy: st.Healthy && !st.Ejected,
			CheckedDown: !st.Healthy, Ejected: st.Ejected, Ejections: st.Ejections, Inflight: st.Inflight,
		}
		if b.pool != nil {
			ps := b.pool.Stats(b.h1.PoolKey(st.Addr))
			ms.Dials, ms.Reuses = ps.Dials, ps.Reuses
		}
		out = append(out, ms)
	}
	return out
}

func (b *backend) stats() upstreamStats {
	out := upstreamStats{Servers: map[string]serverStats{}, Circuit: newCircuitStats(b.b.Counters())}
	for _, st := range b.b.Stats(nil) {
		out.Servers[st.Addr] = newServerStats(st)
	}
	if b.pool != nil {
		out.Connections = newPoolStats(b.pool.Totals())
	}
	return out
}
