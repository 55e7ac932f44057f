package edge

import (
	"log/slog"
	"sort"
	"time"

	"github.com/outpost-edge/outpost/cache"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/storage"
)

// cacheLayer is the process's one cache, shared by every route that
// enables caching; each route brings its own Policy.
type cacheLayer struct {
	c     *cache.Cache
	store storage.Store
	log   *slog.Logger
}

// routeCache is a route's view of the cache: it implements proxy.Cache.
// Its keys start with the route's name (or its upstream's), and it serves
// only requests that still go to the upstream it was built with: a hook
// that sends a request elsewhere gets a pass, never another origin's
// objects.
type routeCache struct {
	layer    *cacheLayer
	pol      cache.Policy
	upstream proxy.Upstream
	shield   *shieldUpstream // the shield misses go to; nil without
}

func policyOf(c *config.Cache) cache.Policy {
	p := cache.Policy{
		Enabled:              c.Enabled,
		DefaultTTL:           c.DefaultTTL,
		MinTTL:               c.MinTTL,
		MaxTTL:               c.MaxTTL,
		OverrideTTL:          c.OverrideTTL,
		Heuristic:            c.Heuristic,
		Methods:              c.Methods,
		MaxObjectSize:        int64(c.MaxObjectSize),
		SegmentSize:          int64(c.SegmentSize),
		SegmentThreshold:     int64(c.SegmentThreshold),
		StaleWhileRevalidate: c.StaleWhileRevalidate,
		StaleIfError:         c.StaleIfError,
		TargetedField:        c.TargetedField,
		LockTimeout:          c.LockTimeout,
		HitForPassTTL:        c.HitForPassTTL,
		SetCookie:            setCookieModes[c.SetCookie],
		Key: cache.KeySpec{
			IgnoreScheme: !c.Key.Scheme,
			IgnoreHost:   !c.Key.Host,
			Headers:      c.Key.Headers,
		},
	}
	switch c.Key.Query {
	case config.QueryNone:
		p.Key.Query = cache.QueryNone
	case config.QueryList:
		p.Key.Query = cache.QueryList
		p.Key.QueryParams = append([]string(nil), c.Key.QueryParams...)
		sort.Strings(p.Key.QueryParams)
	}
	return p
}

// setCookieModes maps routes[].cache.set_cookie (validated by config).
var setCookieModes = map[string]cache.SetCookieMode{
	"pass": cache.SetCookiePass, "strip": cache.SetCookieStrip, "store": cache.SetCookieStore,
}

// newCacheLayer builds the cache over store. A node in a cluster names
// itself in Cache-Status by its node name (name), so that a response that
// passed through a shield names both caches (RFC 9211 section 2); alone,
// it is "Outpost".
func newCacheLayer(store storage.Store, name string, log *slog.Logger, clock func() time.Time) *cacheLayer {
	return &cacheLayer{
		c:     cache.New(store, cache.Options{Name: name, Logger: log, Clock: clock}),
		store: store,
		log:   log,
	}
}

// Serve implements proxy.Cache.
func (r *routeCache) Serve(c *proxy.Ctx) (proxy.Reply, error) {
	if c.Route.Upstream != r.upstream {
		c.Trace.Add("cache", "pass: the route's upstream was replaced")
		resp, body, err := c.Fetch(c.Request)
		if err != nil {
			return proxy.Reply{}, err
		}
		return proxy.Reply{Head: resp, Body: body, Closer: body}, nil
	}
	if r.shield != nil && r.shield.looped(c) {
		return proxy.Reply{}, errLoop // before the cache: it would wait on its own fetch
	}
	rep, err := r.layer.c.Serve(origin{c}, c.Request, &r.pol, c.Trace)
	if err != nil {
		return proxy.Reply{}, err
	}
	return proxy.Reply{Head: rep.Head, BodyBytes: rep.BodyBytes, Body: rep.Body, Closer: rep}, nil
}

// origin is the engine's Ctx as the cache's way to the origin: its
// upstream phases, and a detached copy for fills that outlive the request.
// One pointer, so passing it as a cache.Origin allocates nothing.
type origin struct{ *proxy.Ctx }

func (o origin) Detach() cache.Origin { return origin{o.Ctx.Detach()} }

func (s *Shared) cacheFor(rc *config.Route, purge *config.Purge, up proxy.Upstream, shield *shieldUpstream) proxy.Cache {
	pol := policyOf(&rc.Cache)
	pol.SurrogateKeyField, pol.KeepSurrogateKey = purge.SurrogateKeyHeader, !purge.StripSurrogateKey
	pol.Key.Origin = rc.Name
	if !rc.Cache.Key.Route {
		pol.Key.Origin = "upstream:" + rc.Upstream
	}
	return &routeCache{layer: s.cache, pol: pol, upstream: up, shield: shield}
}

func (l *cacheLayer) metrics() []metrics.Value {
	st := l.store.Stats()
	cs := l.c.Stats()
	counter := func(name, help string, v int64) metrics.Value {
		return metrics.Value{Name: name, Help: help, Counter: true, V: float64(v)}
	}
	return []metrics.Value{
		counter("outpost_cache_hits_total", "Requests served fresh from the cache.", cs.Hits.Load()),
		counter("outpost_cache_misses_total", "Requests fetched because nothing usable was stored.", cs.Misses.Load()),
		counter("outpost_cache_stale_served_total", "Requests served stale (stale-while-revalidate, stale-if-error).", cs.StaleServed.Load()),
		counter("outpost_cache_revalidated_total", "Stale objects confirmed by a 304 from the origin.", cs.Revalidated.Load()),
		counter("outpost_cache_collapsed_total", "Requests that waited on another request's fetch.", cs.Collapsed.Load()),
		counter("outpost_cache_passes_total", "Requests sent to the origin without caching.", cs.Passes.Load()),
		counter("outpost_cache_stored_total", "Objects stored.", cs.Stored.Load()),
		counter("outpost_cache_aborted_total", "Fills abandoned (origin reset, too large).", cs.Aborted.Load()),
		counter("outpost_cache_bytes_from_cache_total", "Body bytes served from the cache.", cs.BytesFromCache.Load()),
		counter("outpost_cache_bytes_from_origin_total", "Body bytes read from origins.", cs.BytesFromOrigin.Load()),
		counter("outpost_cache_purged_total", "Objects purged.", cs.Purged.Load()),
		{Name: "outpost_cache_objects", Help: "Objects held in the cache.", V: float64(st.Objects)},
		{Name: "outpost_cache_bytes", Help: "Bytes held in the cache.", V: float64(st.Bytes)},
		{Name: "outpost_cache_capacity_bytes", Help: "Bytes the cache may hold.", V: float64(st.Capacity)},
		{Name: "outpost_cache_evictions_total", Help: "Objects evicted to make room.", Counter: true, V: float64(st.Evictions)},
	}
}

func (l *cacheLayer) stats() map[string]any {
	st := l.store.Stats()
	cs := l.c.Stats()
	return map[string]any{
		"objects": st.Objects, "bytes": st.Bytes, "capacity_bytes": st.Capacity, "evictions": st.Evictions,
		"hits": cs.Hits.Load(), "misses": cs.Misses.Load(), "stale_served": cs.StaleServed.Load(),
		"collapsed": cs.Collapsed.Load(), "stored": cs.Stored.Load(), "purged": cs.Purged.Load(),
	}
}
