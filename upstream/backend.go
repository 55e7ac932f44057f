package upstream

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Errors returned to the engine. Each means the request gets a fast 503
// (or, with a cache, stale content) rather than another attempt.
var (
	// ErrNoServer: every server of the backend (backups included) is
	// unhealthy, ejected or already tried for this request.
	ErrNoServer = errors.New("upstream: no usable server")
	// ErrCircuitOpen: the backend has MaxConcurrent requests in flight and
	// MaxPending more waiting for a slot.
	ErrCircuitOpen = errors.New("upstream: circuit open: too many requests to backend")
	// ErrRetryBudget: retries in the recent window already used the
	// backend's retry budget; retrying now would add to a storm.
	ErrRetryBudget = errors.New("upstream: retry budget exhausted")
)

// Clock tells the time; tests inject a fake one.
type Clock interface {
	Now() time.Time
}

// Config is a Backend's configuration. The zero value works: round robin,
// outlier detection, retry budget and latency tracking with their defaults,
// no concurrency limit.
type Config struct {
	// Name labels the backend in logs and metrics.
	Name string
	// Policy chooses servers. Nil means RoundRobin.
	Policy Policy
	// Outlier configures passive outlier detection.
	Outlier Outlier
	// Limits configures circuit breaking.
	Limits Limits
	// Budget bounds retries.
	Budget Budget
	// LatencyDecay is the time constant of the peak-EWMA latency estimate:
	// a sample's weight falls to 1/e after this long. Default 10s.
	LatencyDecay time.Duration
	// Clock tells the time. Nil means the system's monotonic clock, which
	// wall clock steps do not disturb.
	Clock Clock
	// Log receives health and ejection changes. Nil means slog.Default().
	Log *slog.Logger
}

// Outlier configures passive outlier detection: a server whose attempts fail
// Consecutive times in a row is ejected for BaseEjection, doubled on each
// ejection in a row up to MaxEjection.
type Outlier struct {
	// Consecutive is the number of failures in a row (5xx, connect
	// failures, resets, timeouts) that ejects a server. Default 5; negative
	// disables ejection.
	Consecutive int
	// BaseEjection is the first ejection's length. Default 10s.
	BaseEjection time.Duration
	// MaxEjection caps the doubling back-off. Default 5m.
	MaxEjection time.Duration
	// MaxEjectedPercent is the share of the backend's servers that may be
	// out at once, rounded down, beyond which no more are ejected. Servers
	// down by active health checks count. Default 50; at most 100.
	MaxEjectedPercent int
}

func (o Outlier) withDefaults() Outlier {
	if o.Consecutive == 0 {
		o.Consecutive = 5
	}
	if o.BaseEjection <= 0 {
		o.BaseEjection = 10 * time.Second
	}
	if o.MaxEjection <= 0 {
		o.MaxEjection = 5 * time.Minute
	}
	if o.MaxEjection < o.BaseEjection {
		o.MaxEjection = o.BaseEjection
	}
	if o.MaxEjectedPercent <= 0 {
		o.MaxEjectedPercent = 50
	}
	o.MaxEjectedPercent = min(o.MaxEjectedPercent, 100)
	return o
}

// ejection returns how long the n-th ejection in a row lasts (n >= 1).
func (o Outlier) ejection(n int32) time.Duration {
	d := o.BaseEjection
	for i := int32(1); i < n && d < o.MaxEjection; i++ {
		d *= 2
	}
	return min(d, o.MaxEjection)
}

// Backend is a named group of servers with its selection policy, outlier
// detection, circuit breaker and retry budget. It is safe for concurrent use
// and long-lived: a config reload swaps its servers with SetServers and its
// settings with Reconfigure, and runtime state carries over.
type Backend struct {
	name  string
	clock Clock     // nil: monotonic time since epoch
	epoch time.Time // with a monotonic reading
	log   *slog.Logger

	set  atomic.Pointer[serverSet]
	tune atomic.Pointer[tuning]

	circuitOpen  atomic.Uint64
	noServer     atomic.Uint64
	budgetDenied atomic.Uint64

	// ejectMu serialises ejections so that concurrent failures cannot
	// together exceed MaxEjectedPercent. Ejections are rare; the hot path
	// never takes it.
	ejectMu sync.Mutex
	// setMu serialises SetServers and Reconfigure.
	setMu sync.Mutex
}

// tuning is the part of the config that Reconfigure may change, swapped as
// a whole. A request keeps the tuning it began with.
type tuning struct {
	policy  Policy
	outlier Outlier
	decay   time.Duration
	limits  Limits
	breaker *breaker
	budgetc Budget
	budget  *budget
}

// newTuning validates cfg and builds its tuning, keeping old's breaker and
// budget (with their counts) when their settings did not change.
func newTuning(cfg Config, old *tuning) (*tuning, error) {
	t := &tuning{
		policy:  cmp.Or[Policy](cfg.Policy, RoundRobin{}),
		outlier: cfg.Outlier.withDefaults(),
		decay:   cmp.Or(cfg.LatencyDecay, 10*time.Second),
		limits:  cfg.Limits,
		budgetc: cfg.Budget,
	}
	if t.decay < 0 {
		return nil, fmt.Errorf("negative LatencyDecay %v", t.decay)
	}
	var err error
	if old != nil && old.limits == t.limits {
		t.breaker = old.breaker
	} else if t.breaker, err = newBreaker(cfg.Limits); err != nil {
		return nil, err
	}
	if old != nil && old.budgetc == t.budgetc {
		t.budget = old.budget
	} else if t.budget, err = newBudget(cfg.Budget); err != nil {
		return nil, err
	}
	return t, nil
}

// serverSet is one immutable generation of a backend's servers.
type serverSet struct {
	all     []*Server // primaries, then backups; Server.idx indexes it
	primary group
	backup  group
	byAddr  map[string]*Server
	byID    map[uint64]*Server
}

// group is the primaries or the backups with the Selector built for them.
type group struct {
	servers []*Server
	sel     Selector
}

// New returns a Backend serving servers. Server values are copied: the
// caller may reuse the slice.
func New(cfg Config, servers []*Server) (*Backend, error) {
	t, err := newTuning(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("upstream %q: %w", cfg.Name, err)
	}
	b := &Backend{
		name:  cfg.Name,
		clock: cfg.Clock,
		epoch: time.Now(),
		log:   cmp.Or(cfg.Log, slog.Default()),
	}
	b.tune.Store(t)
	b.set.Store(&serverSet{})
	if err := b.SetServers(servers); err != nil {
		return nil, err
	}
	return b, nil
}

// Reconfigure applies a new config to a running backend: policy, outlier
// detection, latency decay, limits and budget. Requests in progress finish
// under the settings they began with (so for a moment the old and new
// concurrency limits both admit requests); server state is kept. Name,
// Clock and Log cannot change: a different Name is an error, Clock and Log
// are ignored.
func (b *Backend) Reconfigure(cfg Config) error {
	if cfg.Name != b.name {
		return fmt.Errorf("upstream %q: Name cannot change on reload (new %q)", b.name, cfg.Name)
	}
	b.setMu.Lock()
	defer b.setMu.Unlock()
	t, err := newTuning(cfg, b.tune.Load())
	if err != nil {
		return fmt.Errorf("upstream %q: %w", b.name, err)
	}
	b.tune.Store(t)
	_, err = b.swapServers(b.set.Load().all, true)
	return err
}

// Name returns the backend's name.
func (b *Backend) Name() string { return b.name }

// now returns the time in nanoseconds on the backend's own timeline: all
// runtime state (ejections, latency, budget) is stamped with it.
func (b *Backend) now() int64 {
	if b.clock != nil {
		return b.clock.Now().UnixNano()
	}
	return int64(time.Since(b.epoch))
}

// SetServers replaces the server set atomically. Servers whose Addr was
// already present keep their runtime state (health, ejection, latency,
// in-flight count); requests in flight on removed servers are not disturbed.
// An empty list is allowed: every request then fails with ErrNoServer.
// A list equal to the current one changes nothing.
func (b *Backend) SetServers(servers []*Server) error {
	_, err := b.setServers(servers)
	return err
}

// setServers is SetServers reporting whether the set changed.
func (b *Backend) setServers(servers []*Server) (changed bool, err error) {
	b.setMu.Lock()
	defer b.setMu.Unlock()
	return b.swapServers(servers, false)
}

// swapServers builds and stores a new set, unless it equals the current
// one and force is false; b.setMu must be held.
func (b *Backend) swapServers(servers []*Server, force bool) (changed bool, err error) {
	policy := b.tune.Load().policy
	old := b.set.Load()
	ordered := slices.Clone(servers)
	slices.SortStableFunc(ordered, func(x, y *Server) int {
		return cmp.Compare(boolInt(x.Backup), boolInt(y.Backup))
	})
	changed = !sameServers(old.all, ordered)
	if !changed && !force {
		return false, nil
	}
	set := &serverSet{
		byAddr: make(map[string]*Server, len(servers)),
		byID:   make(map[uint64]*Server, len(servers)),
	}
	for _, cfg := range ordered {
		if cfg.Addr == "" {
			return false, fmt.Errorf("upstream %q: server with empty address", b.name)
		}
		if _, dup := set.byAddr[cfg.Addr]; dup {
			return false, fmt.Errorf("upstream %q: server %s listed twice", b.name, cfg.Addr)
		}
		s := &Server{Addr: cfg.Addr, Weight: cfg.Weight, Backup: cfg.Backup,
			id: serverID(cfg.Addr), idx: len(set.all), st: new(state)}
		if prev := old.byAddr[cfg.Addr]; prev != nil {
			s.st = prev.st
		}
		set.byAddr[s.Addr] = s
		set.byID[s.id] = s
		set.all = append(set.all, s)
	}
	nprimary := 0
	for nprimary < len(set.all) && !set.all[nprimary].Backup {
		nprimary++
	}
	set.primary = buildGroup(policy, set.all[:nprimary])
	set.backup = buildGroup(policy, set.all[nprimary:])
	b.set.Store(set)
	if changed {
		b.log.Info("upstream servers changed", "backend", b.name,
			"primaries", nprimary, "backups", len(set.all)-nprimary)
	}
	return changed, nil
}

func buildGroup(p Policy, servers []*Server) group {
	if len(servers) == 0 {
		return group{}
	}
	return group{servers: servers, sel: p.Build(servers)}
}

func sameServers(a, b []*Server) bool {
	return slices.EqualFunc(a, b, func(x, y *Server) bool {
		return x.Addr == y.Addr && x.Weight == y.Weight && x.Backup == y.Backup
	})
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

// Servers returns the current servers, primaries first. The slice and the
// servers are shared: read them, do not modify them.
func (b *Backend) Servers() []*Server { return b.set.Load().all }

// Addrs appends the current servers' addresses to dst: the targets for
// active health checks.
func (b *Backend) Addrs(dst []string) []string {
	for _, s := range b.set.Load().all {
		dst = append(dst, s.Addr)
	}
	return dst
}

// Server returns the current server with the address, or nil.
func (b *Backend) Server(addr string) *Server { return b.set.Load().byAddr[addr] }

// SetHealthy records the verdict of an active health check for the server
// with the address, logging a change. It reports whether the server is in
// the current set. It is the observer that package upstream/health calls.
func (b *Backend) SetHealthy(addr string, healthy bool) bool {
	s := b.Server(addr)
	if s == nil {
		return false
	}
	if s.st.unhealthy.Swap(!healthy) == !healthy {
		return true
	}
	if healthy {
		b.log.Info("upstream server healthy", "backend", b.name, "server", addr)
	} else {
		b.log.Warn("upstream server unhealthy", "backend", b.name, "server", addr)
	}
	return true
}

// Outcome is how one attempt went, as the engine judged it.
type Outcome uint8

const (
	// Success: the server answered with a response that is not a server
	// failure (any status the route does not count as failure).
	Success Outcome = iota
	// ServerError: the server answered with a failure status (5xx).
	ServerError
	// ConnectError: connecting failed; nothing reached the server.
	ConnectError
	// Reset: the connection failed after the request was sent, before a
	// response head arrived.
	Reset
	// Timeout: no response head within the attempt's time limit.
	Timeout
	// Canceled: the attempt was abandoned for a reason that is not the
	// server's (the client went away). Only the in-flight count changes.
	Canceled
)

func (o Outcome) String() string {
	switch o {
	case Success:
		return "success"
	case ServerError:
		return "server error"
	case ConnectError:
		return "connect error"
	case Reset:
		return "reset"
	case Timeout:
		return "timeout"
	case Canceled:
		return "canceled"
	}
	return "unknown"
}

// Report tells the backend how an attempt on s went and how long it took to
// get the response head. Every server returned by Iter.Next must be reported
// exactly once, with Report or Iter.Report.
func (b *Backend) Report(s *Server, o Outcome, took time.Duration) {
	b.report(s, o, took, b.now())
}

func (b *Backend) report(s *Server, o Outcome, took time.Duration, now int64) {
	t := b.tune.Load()
	st := s.st
	st.inflight.Add(-1)
	if o == Canceled {
		return
	}
	st.requests.Add(1)
	if o != ConnectError {
		// A connect failure returns fast; counting its latency would make a
		// dead server look like the quickest one.
		s.observe(now, took, t.decay)
	}
	if o == Success {
		st.fails.Store(0)
		forgiveEjections(s, now, t.outlier)
		return
	}
	st.errors.Add(1)
	if n := st.fails.Add(1); t.outlier.Consecutive > 0 && int(n) >= t.outlier.Consecutive {
		b.eject(s, now, o, t.outlier)
	}
}

// forgiveEjections resets the ejection back-off once a server has worked for
// as long as its last ejection lasted.
func forgiveEjections(s *Server, now int64, o Outlier) {
	streak := s.st.streak.Load()
	if streak == 0 {
		return
	}
	if now-s.st.ejectedUntil.Load() > int64(o.ejection(streak)) {
		s.st.streak.CompareAndSwap(streak, 0)
	}
}

// eject takes s out of selection unless that would leave more than
// MaxEjectedPercent of the backend unusable. Servers that active checks
// marked down count towards the limit: passive detection must not take out
// the last servers that still work.
func (b *Backend) eject(s *Server, now int64, why Outcome, o Outlier) {
	b.ejectMu.Lock()
	defer b.ejectMu.Unlock()
	if s.st.ejectedUntil.Load() > now {
		return
	}
	set := b.set.Load()
	down := 0
	for _, x := range set.all {
		if !x.usable(now) {
			down++
		}
	}
	if limit := len(set.all) * o.MaxEjectedPercent / 100; down >= limit {
		b.log.Debug("upstream ejection skipped: too many servers down", "backend", b.name,
			"server", s.Addr, "down", down, "limit", limit)
		return
	}
	streak := s.st.streak.Add(1)
	d := o.ejection(streak)
	s.st.ejectedUntil.Store(now + int64(d))
	s.st.fails.Store(0)
	s.st.ejections.Add(1)
	b.log.Warn("upstream server ejected", "backend", b.name, "server", s.Addr,
		"after", why.String(), "for", d, "streak", streak)
}

// Stats appends a snapshot of every current server's counters to dst.
func (b *Backend) Stats(dst []Stats) []Stats {
	now, decay := b.now(), b.tune.Load().decay
	for _, s := range b.set.Load().all {
		dst = append(dst, s.stats(now, decay))
	}
	return dst
}

// Counters are a backend's own counters, for metrics.
type Counters struct {
	Active       int64  // requests holding a slot of the current limits
	Pending      int64  // requests waiting for a slot of the current limits
	CircuitOpen  uint64 // requests refused with ErrCircuitOpen
	BudgetDenied uint64 // retries refused with ErrRetryBudget
	NoServer     uint64 // selections that found no usable server
}

// Counters returns a snapshot of the backend's counters.
func (b *Backend) Counters() Counters {
	br := b.tune.Load().breaker
	return Counters{
		Active:       br.active.Load(),
		Pending:      br.pending.Load(),
		CircuitOpen:  b.circuitOpen.Load(),
		BudgetDenied: b.budgetDenied.Load(),
		NoServer:     b.noServer.Load(),
	}
}
