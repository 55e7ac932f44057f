package upstream

import (
	"context"
	"time"
)

// Iter walks one request's candidate servers in order of preference. It
// holds the server set as it was when the request began, so a concurrent
// SetServers does not disturb it. Keep one Iter per request slot and reuse
// it: after the first requests, Begin and Next allocate nothing.
//
// An Iter must not be used by two goroutines at once.
type Iter struct {
	b        *Backend
	tune     *tuning // settings the request began with
	set      *serverSet
	cand     Candidates
	tried    []uint64 // bit i: set.all[i] was returned by Next
	prefer   *Server
	attempts int
	holding  bool // holds a circuit breaker slot until End
}

// Begin starts a request on the backend: it takes a circuit breaker slot
// (waiting while ctx allows if the backend has pending room) and counts the
// request in the retry budget. key is the request's hash for consistent
// hashing (see HashKey); other policies ignore it. Every successful Begin
// must be followed by End; Begin on an Iter still holding a slot ends its
// previous request first, so a forgotten End cannot leak slots.
func (b *Backend) Begin(ctx context.Context, it *Iter, key uint64) error {
	it.End()
	t := b.tune.Load()
	if err := t.breaker.acquire(ctx); err != nil {
		b.circuitOpen.Add(1)
		return err
	}
	set := b.set.Load()
	words := (len(set.all) + 63) / 64
	if cap(it.tried) < words {
		it.tried = make([]uint64, words)
	}
	it.tried = it.tried[:words]
	clear(it.tried)
	now := b.now()
	*it = Iter{
		b:       b,
		tune:    t,
		set:     set,
		tried:   it.tried,
		holding: true,
		cand:    Candidates{key: key, now: now, decay: t.decay},
	}
	it.cand.tried = it.tried
	t.budget.deposit(now)
	return nil
}

// End finishes the request, releasing its circuit breaker slot. Calling it
// again does nothing.
func (it *Iter) End() {
	if it.holding {
		it.holding = false
		it.tune.breaker.release()
	}
}

// Prefer makes the server with the id the first candidate if it is in the
// request's server set and usable; it reports whether it is. Sticky sessions
// use it before the first Next.
func (it *Iter) Prefer(id uint64) bool {
	s := it.set.byID[id]
	if s == nil || !s.usable(it.cand.now) {
		return false
	}
	it.prefer = s
	return true
}

// Attempts returns how many servers Next has returned for this request.
func (it *Iter) Attempts() int { return it.attempts }

// Next returns the next server to try: the policy's choice among the usable
// primaries not tried yet for this request, or among the backups when there
// is none. The attempt counts as in flight until it is reported. Beyond the
// first attempt, each call spends from the retry budget. It returns
// ErrNoServer when no candidate is left and ErrRetryBudget when the budget
// is spent.
func (it *Iter) Next() (*Server, error) {
	if it.b == nil {
		return nil, ErrNoServer
	}
	if it.attempts > 0 {
		// The first attempt uses Begin's time: one clock read per request.
		it.cand.now = it.b.now()
	}
	now := it.cand.now
	s := it.choose()
	if s == nil {
		it.b.noServer.Add(1)
		return nil, ErrNoServer
	}
	if it.attempts > 0 && !it.tune.budget.withdraw(now) {
		it.b.budgetDenied.Add(1)
		return nil, ErrRetryBudget
	}
	it.tried[s.idx/64] |= 1 << (s.idx % 64)
	it.attempts++
	s.st.inflight.Add(1)
	return s, nil
}

// Report is Backend.Report for a server this Iter returned: it takes the
// time of the report to be the attempt's start plus took, which saves a
// clock read per attempt.
func (it *Iter) Report(s *Server, o Outcome, took time.Duration) {
	it.b.report(s, o, took, it.cand.now+int64(took))
}

func (it *Iter) choose() *Server {
	if s := it.prefer; s != nil {
		it.prefer = nil
		if !it.cand.isTried(s) && s.usable(it.cand.now) {
			return s
		}
	}
	for _, g := range [2]*group{&it.set.primary, &it.set.backup} {
		if g.sel == nil {
			continue
		}
		it.cand.servers = g.servers
		if i := g.sel.Select(&it.cand); i >= 0 && i < len(g.servers) && it.cand.Allowed(i) {
			return g.servers[i]
		}
	}
	return nil
}

// Candidates is what a Selector sees during one selection: one group of
// servers (primaries or backups) and which of them may be chosen now.
type Candidates struct {
	servers []*Server
	tried   []uint64
	key     uint64
	now     int64 // Backend.now time
	decay   time.Duration
}

// Len returns the number of servers in the group.
func (c *Candidates) Len() int { return len(c.servers) }

// Server returns the i-th server of the group, in the order given to Build.
func (c *Candidates) Server(i int) *Server { return c.servers[i] }

// Key returns the request's hash key.
func (c *Candidates) Key() uint64 { return c.key }

// Allowed reports whether server i may be chosen: it is healthy, not
// ejected, and not tried yet for this request.
func (c *Candidates) Allowed(i int) bool {
	s := c.servers[i]
	return !c.isTried(s) && s.usable(c.now)
}

// Latency returns server i's peak-EWMA latency estimate, decayed to now; 0
// when it has no sample yet.
func (c *Candidates) Latency(i int) time.Duration {
	return time.Duration(c.servers[i].latency(c.now, c.decay))
}

func (c *Candidates) isTried(s *Server) bool {
	return c.tried[s.idx/64]&(1<<(s.idx%64)) != 0
}
