package edge

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/accesslog"
	"github.com/outpost-edge/outpost/cache"
	"github.com/outpost-edge/outpost/certs"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/geoip"
	"github.com/outpost-edge/outpost/limit"
	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/origin/s3"
	"github.com/outpost-edge/outpost/purge"
	"github.com/outpost-edge/outpost/stats"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/memory"
	"github.com/outpost-edge/outpost/upstream"
)

// Shared is the state that outlives a config reload: the cache and its
// storage, upstream backends with their connection pools and health, route
// counters, certificate stores and the access log. Keyed objects are
// looked up by name, so a reloaded config with the same upstream keeps its
// warm connections and health state.
type Shared struct {
	Log    *slog.Logger
	Access *accesslog.Logger // nil when the access log is off
	// ClusterPurge, when set (a node in a cluster), runs a PURGE method's
	// purge on every node and returns the answer to send as JSON; an
	// error means nothing was purged. Set before the node serves.
	ClusterPurge func(r PurgeRequest, who string) (any, error)
	// Shard, when set before the App is built, splits the cache between
	// the nodes of a site (see shard.go).
	Shard Sharder
	// Shield, when set before the App is built (a node in a cluster),
	// picks the shield of the upstreams that name one (see shield.go).
	Shield Shielder

	store    storage.Store
	cache    *cacheLayer   // nil when no storage tier is configured
	purger   *purge.Purger // nil with the cache
	mu       sync.Mutex
	backends map[string]*backend
	buckets  map[string]*s3.Counters // of type s3 upstreams, across reloads
	routes   map[string]*stats.Route
	limiters map[string]*limit.Limiter
	unrouted *stats.Route

	// Protection state (see protect.go).
	guards     map[string]*guardCounter // decision counters by rule
	estimators map[string]estimator     // rate sketches by rule
	inflight   *limit.InFlight          // requests in flight per client
	secret     []byte                   // challenge key when the config sets none
	tarpits    atomic.Int64             // requests held by tarpits now

	certs   []*certs.Store
	geo     *geoip.DB // nil without a database
	closers []io.Closer
	ctx     context.Context
	cancel  context.CancelFunc
}

// NewShared builds the long-lived state for cfg.
func NewShared(cfg *config.Config, log *slog.Logger) (*Shared, error) {
	return NewSharedClock(cfg, log, nil)
}

// NewSharedClock is NewShared with the cache reading the time from clock
// (nil: time.Now): the fiddle runs an engine on a virtual clock.
func NewSharedClock(cfg *config.Config, log *slog.Logger, clock func() time.Time) (*Shared, error) {
	s := &Shared{
		Log:        log,
		backends:   map[string]*backend{},
		buckets:    map[string]*s3.Counters{},
		routes:     map[string]*stats.Route{},
		limiters:   map[string]*limit.Limiter{},
		guards:     map[string]*guardCounter{},
		estimators: map[string]estimator{},
		unrouted:   &stats.Route{Name: "(none)"},
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if err := s.openAccessLog(cfg.Log); err != nil {
		return nil, err
	}
	if path := cfg.Protection.GeoIP.Database; path != "" {
		db, err := geoip.Open(path)
		if err != nil {
			s.Close()
			return nil, err
		}
		s.geo = db
		s.closers = append(s.closers, db)
	}
	store, err := openStorage(cfg.Storage, log)
	if err != nil {
		s.Close()
		return nil, err
	}
	if store != nil {
		indexed := purge.Wrap(store, cache.EachTag)
		s.store = indexed
		s.cache = newCacheLayer(indexed, cfg.Cluster.Name, log, clock)
		s.purger = purge.New(indexed, s.cache.c)
	}
	return s, nil
}

func (s *Shared) openAccessLog(l config.Log) error {
	var w io.Writer
	switch l.Access {
	case "off", "":
		return nil
	case "stdout":
		w = os.Stdout
	case "stderr":
		w = os.Stderr
	default:
		f, err := os.OpenFile(l.Access, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		s.closers = append(s.closers, f)
		w = f
	}
	s.Access = accesslog.New(w, 0)
	return nil
}

// openStorage opens the configured tiers: memory, disk, or memory in
// front of disk.
func openStorage(c config.Storage, log *slog.Logger) (storage.Store, error) {
	var mem storage.Store
	if c.Memory.Size > 0 {
		mem = memory.New(memory.Options{Capacity: int64(c.Memory.Size), MaxObjectSize: int64(c.Memory.MaxObjectSize)})
	}
	if c.Disk.Path == "" {
		return mem, nil
	}
	disk, err := openDisk(c.Disk, log)
	if err != nil {
		return nil, err
	}
	if mem == nil {
		return disk, nil
	}
	return newTiered(mem, disk), nil
}

func (s *Shared) routeStats(name string) *stats.Route {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.routes[name]
	if !ok {
		st = &stats.Route{Name: name}
		s.routes[name] = st
	}
	return st
}

// Geo returns the country database for expressions, nil when there is
// none (a nil interface, not a nil pointer in one).
func (s *Shared) Geo() expr.Geo {
	if s.geo == nil {
		return nil
	}
	return s.geo
}

// TLSConfig returns the server TLS config for a listener, with its
// certificates reloaded when their files change.
func (s *Shared) TLSConfig(c *config.ListenerTLS) (*tls.Config, error) {
	pairs := make([]certs.Pair, len(c.Certs))
	for i, p := range c.Certs {
		pairs[i] = certs.Pair{CertFile: p.Cert, KeyFile: p.Key}
	}
	store, err := certs.New(s.ctx, certs.Config{Pairs: pairs, Logger: s.Log})
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.certs = append(s.certs, store)
	s.mu.Unlock()
	opts := certs.ServerOptions{MinVersion: uint16(c.MinVersion)}
	if c.ClientCA != "" {
		if opts.ClientCAs, err = certs.LoadCertPool(c.ClientCA); err != nil {
			return nil, err
		}
	}
	return certs.ServerConfig(store, opts), nil
}

// Close stops background work and flushes what must be kept.
func (s *Shared) Close() {
	s.cancel()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, b := range s.backends {
		b.close()
	}
	for _, c := range s.certs {
		c.Close()
	}
	if s.Access != nil {
		s.Access.Close()
	}
	if s.cache != nil {
		// Fills and refreshes still running finish before the store
		// closes, or their objects would be lost.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if err := s.cache.c.Drain(ctx); err != nil {
			s.Log.Warn("cache fills still running at close", "error", err)
		}
		cancel()
	}
	if s.store != nil {
		if err := s.store.Close(); err != nil {
			s.Log.Error("closing cache storage", "error", err)
		}
	}
	for _, c := range s.closers {
		c.Close()
	}
}

// Metrics gathers the metrics snapshot for app's routes.
func (s *Shared) Metrics(app *App) metrics.Snapshot {
	snap := metrics.Snapshot{Routes: app.Stats(), Values: append(s.guardMetrics(), app.wasmMetrics()...)}
	s.mu.Lock()
	for name, b := range s.backends {
		snap.Servers = append(snap.Servers, b.metrics(name)...)
		snap.Values = append(snap.Values, backendCounters(name, b.b.Counters())...)
	}
	for name, n := range s.buckets {
		snap.Servers = append(snap.Servers, metrics.Server{Upstream: name, Addr: app.bucketAddr(name),
			Requests: n.Requests.Load(), Errors: n.Errors.Load(), Latency: &n.Latency, Healthy: true, Inflight: n.Inflight.Load()})
	}
	s.mu.Unlock()
	if s.cache != nil {
		snap.Values = append(snap.Values, s.cache.metrics()...)
		snap.Values = append(snap.Values, storageMetrics(s.store)...)
		for k := purge.ByURL; k <= purge.All; k++ {
			snap.Values = append(snap.Values, metrics.Value{Name: "outpost_purges_total", Help: "Purge operations by kind.",
				Counter: true, Labels: []string{"kind", k.String()}, V: float64(s.purger.Counts[k].Load())})
		}
		snap.Values = append(snap.Values, metrics.Value{Name: "outpost_purged_objects_total", Help: "Objects touched by purges.",
			Counter: true, V: float64(s.purger.Objects.Load())})
	}
	return snap
}

// backendCounters exports an upstream's breaker and budget counters.
func backendCounters(name string, c upstream.Counters) []metrics.Value {
	l := []string{"upstream", name}
	return []metrics.Value{
		{Name: "outpost_upstream_active", Help: "Requests holding a circuit breaker slot.", Labels: l, V: float64(c.Active)},
		{Name: "outpost_upstream_pending", Help: "Requests waiting for a circuit breaker slot.", Labels: l, V: float64(c.Pending)},
		{Name: "outpost_upstream_circuit_open_total", Help: "Requests refused by the circuit breaker.", Counter: true, Labels: l, V: float64(c.CircuitOpen)},
		{Name: "outpost_upstream_budget_denied_total", Help: "Retries refused by the retry budget.", Counter: true, Labels: l, V: float64(c.BudgetDenied)},
		{Name: "outpost_upstream_no_server_total", Help: "Selections that found no usable server.", Counter: true, Labels: l, V: float64(c.NoServer)},
	}
}

// retireAfter is how long a removed upstream keeps its connections for
// the requests that were already on their way to it.
const retireAfter = time.Minute

// Retain retires the backends a new config no longer names: they leave
// metrics and stats at once, and their health checks, discovery and
// connections stop once the requests already sent to them are done.
// Called once a reload has been applied.
func (s *Shared) Retain(cfg *config.Config) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for name, b := range s.backends {
		if u, ok := cfg.Upstreams[name]; !ok || u.Type == config.UpstreamS3 { // a bucket has no backend
			delete(s.backends, name)
			time.AfterFunc(retireAfter, b.close)
		}
	}
	for name := range s.buckets {
		if u, ok := cfg.Upstreams[name]; !ok || u.Type != config.UpstreamS3 {
			delete(s.buckets, name)
		}
	}
}

// bucketCounters returns the counters of the type s3 upstream name,
// making them on first use.
func (s *Shared) bucketCounters(name string) *s3.Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.buckets[name]
	if n == nil {
		n = &s3.Counters{}
		s.buckets[name] = n
	}
	return n
}

// Stats is the JSON form of the shared state for GET /stats.
func (s *Shared) Stats() map[string]any {
	out := map[string]any{}
	s.mu.Lock()
	ups := map[string]upstreamStats{}
	for name, b := range s.backends {
		ups[name] = b.stats()
	}
	buckets := map[string]bucketStats{}
	for name, n := range s.buckets {
		buckets[name] = bucketStats{Requests: n.Requests.Load(), Errors: n.Errors.Load(), InFlight: n.Inflight.Load()}
	}
	s.mu.Unlock()
	out["upstreams"] = ups
	out["buckets"] = buckets
	if s.cache != nil {
		out["cache"] = s.cache.stats()
		purges := map[string]int64{"objects": s.purger.Objects.Load()}
		for k := purge.ByURL; k <= purge.All; k++ {
			purges[k.String()] = s.purger.Counts[k].Load()
		}
		out["purges"] = purges
	}
	return out
}

// Settle waits until the cache's background work (fills that outlive
// their request, stale-while-revalidate refreshes) is done, or ctx ends:
// the fiddle settles after each request so that the next one sees its
// effects.
func (s *Shared) Settle(ctx context.Context) error {
	if s.cache == nil {
		return nil
	}
	return s.cache.c.Drain(ctx)
}
