package upstream

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"
)

// Budget bounds retries to a share of requests over a sliding window, with a
// floor so that a quiet backend can still retry (Finagle's and Linkerd's
// retry budget). When a backend fails, retries stop at the budget instead of
// multiplying its load.
type Budget struct {
	// Ratio is the number of retries allowed per request over the window.
	// Default 0.2 (20% extra load at most).
	Ratio float64
	// MinPerSecond is the number of retries allowed per second whatever
	// the ratio. Default 10.
	MinPerSecond int
	// Window is the span of the sliding window. Default 10s.
	Window time.Duration
}

const budgetBuckets = 10

// budget counts requests and retries in budgetBuckets time slots that
// together cover the window. Counters are atomics; a slot is recycled by the
// first caller that sees it is stale. Counts racing with the recycling may be
// lost, which only makes the budget slightly more or less generous.
type budget struct {
	ratio   float64
	floor   float64 // retries always allowed over the window
	width   int64   // slot width in nanoseconds
	buckets [budgetBuckets]budgetBucket
}

type budgetBucket struct {
	slot     atomic.Int64
	requests atomic.Int64
	retries  atomic.Int64
}

func newBudget(c Budget) (*budget, error) {
	if c.Ratio < 0 || c.MinPerSecond < 0 || c.Window < 0 {
		return nil, fmt.Errorf("negative retry budget %+v", c)
	}
	if c.Ratio == 0 {
		c.Ratio = 0.2
	}
	if c.MinPerSecond == 0 {
		c.MinPerSecond = 10
	}
	if c.Window == 0 {
		c.Window = 10 * time.Second
	}
	bg := &budget{
		ratio: c.Ratio,
		floor: float64(c.MinPerSecond) * c.Window.Seconds(),
		width: max(int64(c.Window)/budgetBuckets, 1),
	}
	for i := range bg.buckets {
		bg.buckets[i].slot.Store(-1)
	}
	return bg, nil
}

func (bg *budget) current(now int64) *budgetBucket {
	slot := now / bg.width
	bk := &bg.buckets[slot%budgetBuckets]
	if s := bk.slot.Load(); s != slot && bk.slot.CompareAndSwap(s, slot) {
		bk.requests.Store(0)
		bk.retries.Store(0)
	}
	return bk
}

// deposit counts a request.
func (bg *budget) deposit(now int64) { bg.current(now).requests.Add(1) }

// withdraw counts a retry if the budget allows it.
func (bg *budget) withdraw(now int64) bool {
	bk := bg.current(now)
	oldest := now/bg.width - budgetBuckets + 1
	var requests, retries int64
	for i := range bg.buckets {
		b := &bg.buckets[i]
		if b.slot.Load() >= oldest {
			requests += b.requests.Load()
			retries += b.retries.Load()
		}
	}
	if float64(retries+1) > bg.ratio*float64(requests)+bg.floor {
		return false
	}
	bk.retries.Add(1)
	return true
}

// Backoff returns how long to wait before retry n (1 for the first retry):
// a random duration in [0, min(max, base·2^(n-1))], the "full jitter"
// schedule, which spreads retries from many clients apart. A max of zero
// means base.
func Backoff(n int, base, max time.Duration) time.Duration {
	if n < 1 || base <= 0 {
		return 0
	}
	if max <= 0 {
		max = base
	}
	d := base
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	d = min(d, max)
	return time.Duration(rand.Int64N(int64(d) + 1))
}
