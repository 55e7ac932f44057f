// Package sim replays request traces (see evict/tracegen) through cache
// eviction policies and reports request and byte hit ratios. It holds the
// reference policies Outpost's own is measured against: LRU, S3-FIFO (Yang
// et al., SOSP 2023) and W-TinyLFU with an adaptive window (Einziger et al.,
// "Adaptive Software Cache Management", Middleware 2018, after Caffeine's
// implementation); Policy drives evict.Policy through its real interface.
//
// A cache here is only the policy: sizes are counted, no bytes are kept.
// An object larger than the capacity is never admitted.
package sim

import (
	"github.com/outpost-edge/outpost/evict"
	"github.com/outpost-edge/outpost/evict/tracegen"
)

// Cache is a policy under simulation.
type Cache interface {
	// Get requests key of size bytes. It reports a hit; on a miss the
	// policy decides whether to keep the object.
	Get(key uint64, size int64) bool
}

// Result counts requests and bytes, and those served from the cache.
type Result struct {
	Requests, Hits  int
	Bytes, HitBytes int64
}

// RequestRatio is the fraction of requests that hit.
func (r Result) RequestRatio() float64 { return ratio(float64(r.Hits), float64(r.Requests)) }

// ByteRatio is the fraction of requested bytes served from the cache.
func (r Result) ByteRatio() float64 { return ratio(float64(r.HitBytes), float64(r.Bytes)) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// Run replays trace through c.
func Run(c Cache, trace []tracegen.Request) Result {
	var r Result
	for _, q := range trace {
		r.Requests++
		r.Bytes += q.Size
		if c.Get(q.Key, q.Size) {
			r.Hits++
			r.HitBytes += q.Size
		}
	}
	return r
}

// Compulsory is the result of a cache that holds everything: only the
// first request for each object misses. No policy can do better.
func Compulsory(trace []tracegen.Request) Result {
	return Run(make(infinite), trace)
}

// infinite is a cache without a bound.
type infinite map[uint64]struct{}

func (c infinite) Get(key uint64, _ int64) bool {
	_, hit := c[key]
	c[key] = struct{}{}
	return hit
}

// Policy is evict.Policy driven as the stores drive it: Contains and Touch
// on a request, Insert on a miss.
type Policy struct{ p *evict.Policy }

// NewPolicy returns Outpost's policy with capacity bytes.
func NewPolicy(capacity int64) *Policy { return &Policy{evict.New(capacity)} }

func (c *Policy) Get(key uint64, size int64) bool {
	if c.p.Contains(key) {
		c.p.Touch(key)
		return true
	}
	c.p.Insert(key, size, func(uint64) {})
	return false
}
