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

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

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
	// Clock tells the time. Nil means the system clock.
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
	// ejected at once, rounded down. Default 50; at most 100.
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
// and long-lived: a config reload swaps its servers with SetServers.
type Backend struct {
	name    string
	policy  Policy
	outlier Outlier
	decay   time.Duration
	clock   Clock
	log     *slog.Logger

	set     atomic.Pointer[serverSet]
	breaker breaker
	budget  budget

	noServer     atomic.Uint64
	budgetDenied atomic.Uint64

	// ejectMu serialises ejections so that concurrent failures cannot
	// together exceed MaxEjectedPercent. Ejections are rare; the hot path
	// never takes it.
	ejectMu sync.Mutex
	// setMu serialises SetServers.
	setMu sync.Mutex
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
	b := &Backend{
		name:    cfg.Name,
		policy:  cmp.Or[Policy](cfg.Policy, RoundRobin{}),
		outlier: cfg.Outlier.withDefaults(),
		decay:   cmp.Or(cfg.LatencyDecay, 10*time.Second),
		clock:   cmp.Or[Clock](cfg.Clock, realClock{}),
		log:     cmp.Or(cfg.Log, slog.Default()),
	}
	if b.decay < 0 {
		return nil, fmt.Errorf("upstream %q: negative LatencyDecay %v", b.name, b.decay)
	}
	if err := b.breaker.init(cfg.Limits); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", b.name, err)
	}
	if err := b.budget.init(cfg.Budget); err != nil {
		return nil, fmt.Errorf("upstream %q: %w", b.name, err)
	}
	b.set.Store(&serverSet{})
	if err := b.SetServers(servers); err != nil {
		return nil, err
	}
	return b, nil
}

// Name returns the backend's name.
func (b *Backend) Name() string { return b.name }

func (b *Backend) now() int64 { return b.clock.Now().UnixNano() }

// SetServers replaces the server set atomically. Servers whose Addr was
// already present keep their runtime state (health, ejection, latency,
// in-flight count); requests in flight on removed servers are not disturbed.
// An empty list is allowed: every request then fails with ErrNoServer.
func (b *Backend) SetServers(servers []*Server) error {
	b.setMu.Lock()
	defer b.setMu.Unlock()
	old := b.set.Load()
	set := &serverSet{
		byAddr: make(map[string]*Server, len(servers)),
		byID:   make(map[uint64]*Server, len(servers)),
	}
	ordered := slices.Clone(servers)
	slices.SortStableFunc(ordered, func(x, y *Server) int {
		return cmp.Compare(boolInt(x.Backup), boolInt(y.Backup))
	})
	for _, cfg := range ordered {
		if cfg.Addr == "" {
			return fmt.Errorf("upstream %q: server with empty address", b.name)
		}
		if _, dup := set.byAddr[cfg.Addr]; dup {
			return fmt.Errorf("upstream %q: server %s listed twice", b.name, cfg.Addr)
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
	set.primary = b.buildGroup(set.all[:nprimary])
	set.backup = b.buildGroup(set.all[nprimary:])
	b.set.Store(set)
	if !sameServers(old.all, set.all) {
		b.log.Info("upstream servers changed", "backend", b.name,
			"primaries", nprimary, "backups", len(set.all)-nprimary)
	}
	return nil
}

func (b *Backend) buildGroup(servers []*Server) group {
	if len(servers) == 0 {
		return group{}
	}
	return group{servers: servers, sel: b.policy.Build(servers)}
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
	st := s.st
	st.inflight.Add(-1)
	if o == Canceled {
		return
	}
	st.requests.Add(1)
	if o != ConnectError {
		// A connect failure returns fast; counting its latency would make a
		// dead server look like the quickest one.
		s.observe(now, took, b.decay)
	}
	if o == Success {
		st.fails.Store(0)
		b.forgiveEjections(s, now)
		return
	}
	st.errors.Add(1)
	if n := st.fails.Add(1); b.outlier.Consecutive > 0 && int(n) >= b.outlier.Consecutive {
		b.eject(s, now, o)
	}
}

// forgiveEjections resets the ejection back-off once a server has worked for
// as long as its last ejection lasted.
func (b *Backend) forgiveEjections(s *Server, now int64) {
	streak := s.st.streak.Load()
	if streak == 0 {
		return
	}
	if now-s.st.ejectedUntil.Load() > int64(b.outlier.ejection(streak)) {
		s.st.streak.CompareAndSwap(streak, 0)
	}
}

// eject takes s out of selection unless that would eject more than
// MaxEjectedPercent of the backend.
func (b *Backend) eject(s *Server, now int64, o Outcome) {
	b.ejectMu.Lock()
	defer b.ejectMu.Unlock()
	if s.st.ejectedUntil.Load() > now {
		return
	}
	set := b.set.Load()
	ejected := 0
	for _, x := range set.all {
		if x.st.ejectedUntil.Load() > now {
			ejected++
		}
	}
	if limit := len(set.all) * b.outlier.MaxEjectedPercent / 100; ejected >= limit {
		b.log.Debug("upstream ejection skipped: too many ejected", "backend", b.name,
			"server", s.Addr, "ejected", ejected, "limit", limit)
		return
	}
	streak := s.st.streak.Add(1)
	d := b.outlier.ejection(streak)
	s.st.ejectedUntil.Store(now + int64(d))
	s.st.fails.Store(0)
	s.st.ejections.Add(1)
	b.log.Warn("upstream server ejected", "backend", b.name, "server", s.Addr,
		"after", o.String(), "for", d, "streak", streak)
}

// Stats appends a snapshot of every current server's counters to dst.
func (b *Backend) Stats(dst []Stats) []Stats {
	now := b.now()
	for _, s := range b.set.Load().all {
		dst = append(dst, s.stats(now, b.decay))
	}
	return dst
}

// Counters are a backend's own counters, for metrics.
type Counters struct {
	Active       int64  // requests holding a concurrency slot
	Pending      int64  // requests waiting for a slot
	CircuitOpen  uint64 // requests refused with ErrCircuitOpen
	BudgetDenied uint64 // retries refused with ErrRetryBudget
	NoServer     uint64 // selections that found no usable server
}

// Counters returns a snapshot of the backend's counters.
func (b *Backend) Counters() Counters {
	return Counters{
		Active:       b.breaker.active.Load(),
		Pending:      b.breaker.pending.Load(),
		CircuitOpen:  b.breaker.open.Load(),
		BudgetDenied: b.budgetDenied.Load(),
		NoServer:     b.noServer.Load(),
	}
}
