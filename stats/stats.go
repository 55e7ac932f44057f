// Package stats holds the plain counters the engine updates on the hot
// path: atomic integers and fixed-bucket histograms, with no locks and no
// allocation per update. Package metrics reads them at scrape time and is
// the only package that knows Prometheus.
package stats

import (
	"sync/atomic"
	"time"
)

// LatencyBuckets are the upper bounds, in seconds, of Histogram buckets.
var LatencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

// Histogram counts durations into LatencyBuckets.
type Histogram struct {
	counts [16]atomic.Uint64 // len(LatencyBuckets)+1, the last for +Inf
	sumNs  atomic.Uint64
}

// Observe records one duration.
func (h *Histogram) Observe(d time.Duration) {
	s := d.Seconds()
	i := 0
	for i < len(LatencyBuckets) && s > LatencyBuckets[i] {
		i++
	}
	h.counts[i].Add(1)
	h.sumNs.Add(uint64(d))
}

// Snapshot returns cumulative bucket counts (as Prometheus wants them),
// the total count and the sum in seconds.
func (h *Histogram) Snapshot() (cumulative []uint64, count uint64, sum float64) {
	cumulative = make([]uint64, len(LatencyBuckets))
	var run uint64
	for i := range LatencyBuckets {
		run += h.counts[i].Load()
		cumulative[i] = run
	}
	count = run + h.counts[len(LatencyBuckets)].Load()
	return cumulative, count, float64(h.sumNs.Load()) / 1e9
}

// Route counts the requests a route served.
type Route struct {
	Name     string
	ByClass  [6]atomic.Uint64 // index status/100; 0 holds statuses outside 100-599
	Latency  Histogram
	BytesOut atomic.Uint64
	// HitLatency and MissLatency are Latency for the requests the cache
	// served fresh and those it fetched (the status page's p50 and p99).
	HitLatency, MissLatency Histogram
}

// Count records one finished request.
func (r *Route) Count(status int, took time.Duration, bytes int64) {
	class := status / 100
	if class < 1 || class > 5 {
		class = 0
	}
	r.ByClass[class].Add(1)
	r.Latency.Observe(took)
	if bytes > 0 {
		r.BytesOut.Add(uint64(bytes))
	}
}
