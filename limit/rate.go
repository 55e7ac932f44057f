package limit

import (
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

const sketchDepth = 4

// Rate estimates how often each key occurs, per Interval, in fixed memory,
// as Pingora's limits crate does: two count-min sketches take turns, one
// counting the current interval while the other keeps the last complete
// one. Use it where an approximate count is enough: rules over request
// rates, or limits over keys too numerous even for a Limiter's table.
//
// A count-min sketch never undercounts a key, but keys that share counters
// inflate each other: the overestimate is about (events in the interval) ×
// e / width, so pick width a few times the number of keys that are active
// at once. Unlike Limiter, Rate errs on the strict side.
//
// A Rate is safe for concurrent use and allocates nothing per call. Events
// recorded while an interval is being cleared may be lost.
type Rate struct {
	interval time.Duration
	width    uint32
	seed     maphash.Seed
	epoch    time.Time

	mu      sync.Mutex // serialises clearing a sketch for a new interval
	windows [2]sketch
}

type sketch struct {
	n      atomic.Int64 // the interval number counted here; math.MinInt64 before use
	counts []atomic.Uint32
}

// NewRate returns an estimator over intervals of the given length with
// sketches of width counters per row (rounded up to a power of two; zero
// means 1<<16). Its memory is 2 × 4 × width × 4 bytes: 2 MiB for the
// default.
func NewRate(interval time.Duration, width int) *Rate {
	if interval <= 0 {
		interval = time.Second
	}
	if width <= 0 {
		width = 1 << 16
	}
	w := 1
	for w < width {
		w <<= 1
	}
	r := &Rate{interval: interval, width: uint32(w), seed: maphash.MakeSeed(), epoch: time.Now()}
	for i := range r.windows {
		r.windows[i].n.Store(math.MinInt64)
		r.windows[i].counts = make([]atomic.Uint32, sketchDepth*w)
	}
	return r
}

// Interval returns the length of one counting interval.
func (r *Rate) Interval() time.Duration { return r.interval }

// Observe records events occurrences of key at now and returns the
// estimated count of key in the current interval, these included.
func (r *Rate) Observe(key []byte, events int, now time.Time) int {
	return r.observe(maphash.Bytes(r.seed, key), events, r.intervalAt(now))
}

// Sliding records events occurrences of key at now and returns the
// estimated count of key over the last Interval up to now: the current
// interval's count plus the previous one's, weighted by how much of it the
// sliding window still covers. Unlike Observe, it does not drop to zero
// when a new interval starts.
func (r *Rate) Sliding(key []byte, events int, now time.Time) float64 {
	h := maphash.Bytes(r.seed, key)
	n := r.intervalAt(now)
	cur := r.observe(h, events, n)
	elapsed := now.Sub(r.epoch) - time.Duration(n)*r.interval
	return float64(r.previous(h, n-1))*(1-float64(elapsed)/float64(r.interval)) + float64(cur)
}

// Rate returns key's events per second over the last complete interval
// (zero when that interval saw nothing, or is older than one interval).
func (r *Rate) Rate(key []byte, now time.Time) float64 {
	return float64(r.Previous(key, now)) / r.interval.Seconds()
}

// Previous returns the estimated count of key in the last complete
// interval.
func (r *Rate) Previous(key []byte, now time.Time) int {
	return r.previous(maphash.Bytes(r.seed, key), r.intervalAt(now)-1)
}

// observe adds events to hash h's counter in every row of the sketch for
// interval n and returns the smallest. (A conservative update, raising
// only the smallest counters, would overestimate less, but it needs the
// four counters updated as one: with lock-free concurrent observers it
// undercounts.)
func (r *Rate) observe(h uint64, events int, n int64) int {
	s := r.current(n)
	if s == nil {
		return 0
	}
	least := uint32(math.MaxUint32)
	for i := range sketchDepth {
		least = min(least, s.counts[r.index(h, i)].Add(uint32(events)))
	}
	return int(least)
}

// previous returns the estimated count of hash h in interval n, zero when
// the sketch for n has moved on.
func (r *Rate) previous(h uint64, n int64) int {
	s := &r.windows[n&1]
	if s.n.Load() != n {
		return 0
	}
	least := uint32(math.MaxUint32)
	for i := range sketchDepth {
		least = min(least, s.counts[r.index(h, i)].Load())
	}
	return int(least)
}

func (r *Rate) intervalAt(now time.Time) int64 {
	d := now.Sub(r.epoch)
	n := int64(d / r.interval)
	if d < 0 && d%r.interval != 0 {
		n-- // floor, so intervals before the epoch are whole too
	}
	return n
}

// index returns the counter of row i for hash h: the rows take
// independent-enough positions from the two halves of one 64-bit hash.
func (r *Rate) index(h uint64, i int) uint32 {
	lo, hi := uint32(h), uint32(h>>32)|1
	return uint32(i)*r.width + (lo+uint32(i)*hi)&(r.width-1)
}

// current returns the sketch counting interval n, clearing it first when it
// last counted an older interval, or nil when n is already two intervals
// behind (a caller with a stale clock reading).
func (r *Rate) current(n int64) *sketch {
	s := &r.windows[n&1]
	if m := s.n.Load(); m >= n {
		if m > n {
			return nil
		}
		return s
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := s.n.Load(); m > n {
		return nil
	} else if m < n {
		for i := range s.counts {
			s.counts[i].Store(0)
		}
		s.n.Store(n)
	}
	return s
}
