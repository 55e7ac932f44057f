// Package edge is the config-driven App: it implements the proxy engine's
// phases from a config.Config. Routing matches the config's routes in
// order; EarlyRequest runs the protection layer (protect.go: bot rules,
// challenge, in-flight limit) and answers PURGE; UpstreamRequest and
// Response apply the route's header edits; the cache, the upstream pools
// and selection come from the packages that own them; Log counts metrics
// and writes the access log.
//
// State that must outlive a config reload (cache contents, upstream
// connection pools, health) lives in Shared, built once per process; Build
// makes a new App over it for each config.
package edge

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/accesslog"
	"github.com/outpost-edge/outpost/certs"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/origin/s3"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/stats"
	"github.com/outpost-edge/outpost/telemetry"
	"github.com/outpost-edge/outpost/wasm"
)

// App implements the proxy phases for one config.
type App struct {
	cfg       *config.Config
	shared    *Shared
	routes    []*route
	upstreams map[string]*backend
	buckets   map[string]*s3.Origin // type s3 upstreams
	access    *accesslog.Logger     // nil: access log off
	purgeFrom []netip.Prefix
	prot      *protection             // nil: no protection configured
	trace     string                  // the trace token; "" for none
	tel       *telemetry.Tracer       // nil: OpenTelemetry off
	filters   map[string]*wasm.Filter // the Proxy-Wasm filters, by name; closed with the App
}

// replayBodyMax is the largest request body kept in memory for retries on
// upstreams with retries.retry_with_body; larger bodies stream and are not
// retried once sent.
const replayBodyMax = 1 << 20

// Build compiles cfg into an App over shared state. It starts nothing
// that outlives the App except what Shared keeps.
func Build(cfg *config.Config, shared *Shared) (_ *App, err error) {
	a := &App{cfg: cfg, shared: shared, upstreams: map[string]*backend{}, buckets: map[string]*s3.Origin{}, access: shared.Access, purgeFrom: cfg.Purge.AllowMethodFrom}
	// Everything that can fail comes before the upstreams, which are
	// reconfigured in place: a config refused here leaves the running
	// one untouched, and what was started for it is released.
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	if a.prot, err = shared.buildProtection(&cfg.Protection); err != nil {
		return nil, err
	}
	if a.trace, err = cfg.Debug.TraceToken(); err != nil {
		return nil, err
	}
	if a.tel, err = telemetry.New(cfg.OTel); err != nil {
		return nil, err
	}
	limits := make([][]rateLimit, len(cfg.Routes))
	for i := range cfg.Routes {
		if limits[i], err = shared.routeLimits(&cfg.Routes[i]); err != nil {
			return nil, err
		}
	}
	if err := checkUpstreamTLS(cfg); err != nil {
		return nil, err
	}
	if a.filters, err = a.loadFilters(cfg); err != nil {
		return nil, err
	}
	for name, u := range cfg.Upstreams {
		if u.Type == config.UpstreamS3 {
			if a.buckets[name], err = newBucket(name, u, shared.bucketCounters(name)); err != nil {
				return nil, err
			}
		}
	}
	for name, u := range cfg.Upstreams {
		if u.Type == config.UpstreamS3 {
			continue
		}
		b, err := shared.backend(name, u)
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		a.upstreams[name] = b
	}
	for i := range cfg.Routes {
		a.routes = append(a.routes, a.compile(&cfg.Routes[i], limits[i]))
	}
	return a, nil
}

// checkUpstreamTLS loads every upstream's TLS files, so that a bad one
// refuses the config before anything is applied.
func checkUpstreamTLS(cfg *config.Config) error {
	for name, u := range cfg.Upstreams {
		if t := u.TLS; t.Enabled {
			if _, err := certs.ClientConfig(t.SNI, t.Verify, t.CA, t.ClientCert, t.ClientKey); err != nil {
				return fmt.Errorf("upstream %s: %w", name, err)
			}
		}
	}
	return nil
}

// compile builds one route over the App's upstreams (config validation
// has checked that the route's upstream exists).
func (a *App) compile(rc *config.Route, limits []rateLimit) *route {
	r := compileRoute(rc, a.shared.routeStats(rc.Name))
	r.geo = a.shared.Geo()
	r.limits = limits
	r.wasm = filterChain(a.cfg, rc, a.filters)
	r.EarlyData = rc.EarlyData
	if r.respond != nil {
		r.Upstream = r.respond
	}
	if rc.Upstream != "" {
		r.Upstream = a.origin(rc)
	}
	if a.upstreams[rc.Upstream] != nil {
		if a.cfg.Upstreams[rc.Upstream].Retries.RetryWithBody {
			r.ReplayBody = replayBodyMax
		}
	}
	if rc.Cache.Enabled && a.shared.cache != nil {
		var shield *shieldUpstream
		if site := a.shieldSite(rc); site != "" && r.Upstream != nil && r.respond == nil {
			shield = &shieldUpstream{inner: r.Upstream, site: site, shields: a.shared.Shield}
			r.Upstream = shield
		}
		if a.shared.Shard != nil && r.Upstream != nil && r.respond == nil {
			r.Upstream = &shardUpstream{inner: r.Upstream, shard: a.shared.Shard}
		}
		r.Cache = a.shared.cacheFor(rc, &a.cfg.Purge, r.Upstream, shield)
	}
	return r
}

// Options returns the engine options the config asks for.
func (a *App) Options() proxy.Options {
	var trusted []netip.Prefix
	for _, l := range a.cfg.Listeners {
		trusted = append(trusted, l.TrustedProxies...)
	}
	tunnelIdle := a.cfg.Timeouts.TunnelIdle
	if tunnelIdle == 0 {
		tunnelIdle = -1 // the config's zero is no limit; the engine's, its default
	}
	return proxy.Options{
		TraceHeader:  a.cfg.Debug.TraceHeader,
		TraceFrom:    a.cfg.Debug.TraceFrom,
		TraceToken:   a.trace,
		StripRequest: a.cfg.Proxy.StripRequestHeaders,
		KeepRequest:  a.cfg.Proxy.KeepRequestHeaders,
		UpgradeAllow: append([]string{}, a.cfg.Proxy.UpgradeAllow...), // empty, not nil: [] allows none
		TunnelIdle:   tunnelIdle,
		Trusted: func(ip netip.Addr) bool {
			for _, p := range trusted {
				if p.Contains(ip.Unmap()) {
					return true
				}
			}
			return false
		},
	}
}

// Route implements proxy.Router: the first matching route wins.
func (a *App) Route(c *proxy.Ctx) error {
	for _, r := range a.routes {
		if r.matches(c) {
			c.Route = &r.Route
			return nil
		}
	}
	return nil
}

// RouteNamed returns the route with the given name, or nil; custom Router
// phases use it to send a request to a configured route.
func (a *App) RouteNamed(name string) *proxy.Route {
	for _, r := range a.routes {
		if r.Name == name {
			return &r.Route
		}
	}
	return nil
}

// EarlyRequest implements proxy.EarlyRequestFilter: the protection layer
// (see protect.go), static answers and the PURGE method.
func (a *App) EarlyRequest(c *proxy.Ctx) (bool, error) {
	if a.tel != nil {
		a.tel.Start(c)
	}
	if a.prot != nil {
		if answered, err := a.prot.early(c); answered || err != nil {
			return answered, err
		}
	}
	if c.Request.IsMethod("PURGE") {
		return true, a.purgeMethod(c)
	}
	return false, nil
}

// UpstreamRequest implements proxy.UpstreamRequestFilter: the client's
// fingerprints when the config sends them, and the route's request header
// edits.
func (a *App) UpstreamRequest(c *proxy.Ctx, out *httphead.Request) error {
	if a.tel != nil {
		a.tel.Fetch(c, out)
	}
	if a.prot != nil && a.prot.fingerprints {
		a.prot.fingerprintFields(c, out)
	}
	if r := routeOf(c); r != nil {
		editHeader(&out.Header, r.cfg.Headers.RequestRemove, r.cfg.Headers.RequestSet)
	}
	if a.shared.Shard != nil {
		out.Header.Del(PeerHeader) // never to an origin
	}
	if a.shared.Shield != nil {
		out.Header.Del(HopsHeader) // never to an origin
	}
	return nil
}

// UpstreamResponse implements proxy.UpstreamResponseFilter: it ends the
// origin fetch's span.
func (a *App) UpstreamResponse(c *proxy.Ctx, resp *httphead.Response) error {
	if a.tel != nil {
		a.tel.FetchDone(c, resp.Status)
	}
	if r := routeOf(c); r != nil && r.wasm != nil && a.cfg.Wasm.Response == config.WasmBeforeStore {
		return r.wasm.Store(c, resp)
	}
	return nil
}

// Response implements proxy.ResponseFilter: the route's response header
// edits.
func (a *App) Response(c *proxy.Ctx, resp *httphead.Response) error {
	if r := routeOf(c); r != nil {
		editHeader(&resp.Header, r.cfg.Headers.ResponseRemove, r.cfg.Headers.ResponseSet)
		markOrigin(c, r, &resp.Header)
		if r.wasm != nil && a.cfg.Wasm.Response != config.WasmBeforeStore {
			return r.wasm.Response(c, resp)
		}
	}
	return nil
}

// editHeader removes the named fields, then sets the given ones.
func editHeader(h *httphead.Header, remove []string, set map[string]string) {
	for _, name := range remove {
		h.Del(name)
	}
	for name, v := range set {
		h.Set(name, v)
	}
}

// routeOf returns the config route a request was sent to, or nil (no
// route, or a route a custom Router made up).
func routeOf(c *proxy.Ctx) *route {
	if c.Route == nil {
		return nil
	}
	r, _ := c.Route.App.(*route)
	return r
}

// Log implements proxy.Logger: metrics and the access log; it also ends
// the request's in-flight count.
func (a *App) Log(c *proxy.Ctx, err error) {
	releaseInFlight(c)
	took := time.Since(c.Trace.Start)
	st := a.shared.unrouted
	if r := routeOf(c); r != nil {
		st = r.stats
		if r.wasm != nil {
			wasm.Log(c)
		}
	}
	st.Count(c.Status, took, c.Bytes)
	if c.Route != nil && c.Route.Cache != nil {
		switch c.Trace.Find("cache") {
		case "hit":
			st.HitLatency.Observe(took)
		case "miss":
			st.MissLatency.Observe(took)
		}
	}
	if a.access != nil {
		a.writeAccess(c, err, took)
	}
	if err != nil && c.Status >= 500 {
		a.shared.Log.Debug("request failed", "id", c.ID(), "error", err)
	}
	if a.tel != nil {
		a.tel.End(c, err)
	}
}

var accessLines = sync.Pool{New: func() any { return new(accesslog.Line) }}

func (a *App) writeAccess(c *proxy.Ctx, err error, took time.Duration) {
	l := accessLines.Get().(*accesslog.Line)
	defer accessLines.Put(l)
	l.Reset()
	l.Time("time", c.Trace.Start)
	l.Str("id", c.ID())
	l.Addr("client", c.Client.Addr())
	l.Bytes("method", c.Request.Method)
	l.Bytes("host", c.Request.Host)
	l.Bytes("path", c.Request.Path)
	l.Int("status", int64(c.Status))
	l.Int("bytes", c.Bytes)
	l.Float("ms", float64(took.Microseconds())/1000)
	if c.Route != nil {
		l.Str("route", c.Route.Name)
	}
	if s := c.Trace.Find("cache"); s != "" {
		l.Str("cache", s)
	}
	if c.Upstream != "" {
		l.Str("upstream", c.Upstream)
		l.Int("attempts", int64(c.Attempts))
	}
	if s := c.Trace.Find("deny"); s != "" {
		l.Str("rule", s)
	}
	if err != nil {
		l.Str("error", err.Error())
	}
	l.Bytes("ua", c.Request.Header.Peek("User-Agent"))
	a.access.Write(l.End())
}

// Stats returns the route counters for metrics.
func (a *App) Stats() []*stats.Route {
	out := make([]*stats.Route, 0, len(a.routes)+1)
	for _, r := range a.routes {
		out = append(out, r.stats)
	}
	return append(out, a.shared.unrouted)
}

// Close releases what the App owns (not what Shared keeps).
func (a *App) Close() {
	closeFilters(a.filters)
	if a.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.tel.Shutdown(ctx); err != nil {
			a.shared.Log.Warn("otel: spans not exported at close", "error", err)
		}
	}
}

var _ interface {
	proxy.Router
	proxy.EarlyRequestFilter
	proxy.RequestFilter
	proxy.UpstreamRequestFilter
	proxy.ResponseFilter
	proxy.Logger
} = (*App)(nil)
