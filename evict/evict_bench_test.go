package evict

import (
	"container/list"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
)

const (
	zipfObjects  = 1_000_000
	zipfRequests = 2_000_000
	zipfCapacity = zipfObjects / 100
)

var zipfTrace = sync.OnceValue(func() []uint64 { return zipf(0.9, zipfObjects, zipfRequests) })

// zipf returns n keys drawn from a Zipf(s) distribution over objects keys
// (rank r has probability proportional to 1/r^s; s may be below 1, which
// math/rand's Zipf does not allow). The keys are spread so that rank does
// not correlate with the key's bits.
func zipf(s float64, objects, n int) []uint64 {
	cdf := make([]float64, objects)
	sum := 0.0
	for r := range cdf {
		sum += 1 / math.Pow(float64(r+1), s)
		cdf[r] = sum
	}
	rng := rand.New(rand.NewPCG(1, 2))
	keys := make([]uint64, n)
	for i := range keys {
		r := sort.SearchFloat64s(cdf, rng.Float64()*sum)
		keys[i] = uint64(r) * 0x9e3779b97f4a7c15
	}
	return keys
}

// lru is the baseline: evict the least recently used object.
type lru struct {
	capacity int
	order    *list.List // front = most recent
	items    map[uint64]*list.Element
}

func newLRU(capacity int) *lru {
	return &lru{capacity: capacity, order: list.New(), items: make(map[uint64]*list.Element)}
}

// get reports a hit, and on a miss inserts key.
func (c *lru) get(key uint64) bool {
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return true
	}
	if c.order.Len() >= c.capacity {
		delete(c.items, c.order.Remove(c.order.Back()).(uint64))
	}
	c.items[key] = c.order.PushFront(key)
	return false
}

// BenchmarkHitRatio replays a Zipf(0.9) trace of 2,000,000 requests over
// 1,000,000 equal-size objects through a cache holding 1% of them, with this
// policy and with LRU, and reports both hit ratios.
func BenchmarkHitRatio(b *testing.B) {
	benchmarkHitRatio(b, zipfTrace())
}

// BenchmarkHitRatioWithScans replays the first half of the same trace with a
// one-time key (a crawler, a scan) after every second request.
func BenchmarkHitRatioWithScans(b *testing.B) {
	zipf := zipfTrace()[:zipfRequests/2]
	trace := make([]uint64, 0, len(zipf)*3/2)
	for i, k := range zipf {
		trace = append(trace, k)
		if i%2 == 1 {
			trace = append(trace, ^uint64(i)) // distinct from every Zipf key
		}
	}
	benchmarkHitRatio(b, trace)
}

func benchmarkHitRatio(b *testing.B, trace []uint64) {
	var policyHits, lruHits int
	for b.Loop() {
		policyHits, lruHits = 0, 0
		p := New(zipfCapacity)
		noEvict := func(uint64) {}
		for _, k := range trace {
			if p.Contains(k) {
				p.Touch(k)
				policyHits++
			} else {
				p.Insert(k, 1, noEvict)
			}
		}
		l := newLRU(zipfCapacity)
		for _, k := range trace {
			if l.get(k) {
				lruHits++
			}
		}
	}
	b.ReportMetric(100*float64(policyHits)/float64(len(trace)), "s3fifo-hit%")
	b.ReportMetric(100*float64(lruHits)/float64(len(trace)), "lru-hit%")
}

// full returns a policy filled to capacity with keys 0..n-1 of weight 1.
func full(n int) *Policy {
	p := New(int64(n))
	for k := range uint64(n) {
		p.Insert(k, 1, func(uint64) {})
	}
	return p
}

func BenchmarkTouch(b *testing.B) {
	const n = 10_000
	p := full(n)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		k := rand.Uint64()
		for pb.Next() {
			p.Touch(k % n)
			k++
		}
	})
}

// BenchmarkInsert inserts new keys into a full policy: each evicts one.
func BenchmarkInsert(b *testing.B) {
	const n = 10_000
	p := full(n)
	var next atomic.Uint64
	next.Store(n)
	evicted := func(uint64) {}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			p.Insert(next.Add(1), 1, evicted)
		}
	})
}
