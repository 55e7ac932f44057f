// Package tracegen generates synthetic CDN request traces, deterministic
// from a seed, to measure eviction policies (see evict/sim) and to replay
// through a running node.
//
// A trace mixes two populations:
//
//   - A catalogue of objects requested by Zipf popularity: the object at
//     rank r is requested with probability proportional to 1/r^Alpha.
//     Popularity drifts: after a request, with probability Drift, the object
//     at a Zipf-drawn rank swaps places with one at a uniformly drawn rank,
//     so a popular object fades and an unknown one rises, as releases and
//     news do.
//   - One-hit wonders: a fraction OneHit of the requests name an object
//     never requested before or after.
//
// Sizes are heavy-tailed: a lognormal body (most objects are small) with a
// Pareto tail (a few are huge), clamped to [MinSize, MaxSize].
package tracegen

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Request is one request of a trace: an object and its size in bytes.
type Request struct {
	Key  uint64
	Size int64
}

// Config describes a trace. Downloads and Media are two ready-made ones.
type Config struct {
	Name     string
	Requests int     // length of the trace
	Objects  int     // catalogue size (objects requested by popularity)
	Alpha    float64 // Zipf skew of the catalogue; 0 is uniform
	Drift    float64 // probability, per request, of one popularity swap
	OneHit   float64 // fraction of requests to objects requested once
	Sizes    Sizes
	Seed     uint64
}

// Sizes is a lognormal body with a Pareto tail, in bytes.
type Sizes struct {
	Median    float64 // median of the lognormal body
	Sigma     float64 // shape of the lognormal body
	TailShare float64 // fraction of objects drawn from the Pareto tail
	TailMin   float64 // smallest size of the tail
	TailAlpha float64 // Pareto shape of the tail; below 2 is very heavy
	MinSize   int64
	MaxSize   int64
}

// Downloads is software and package downloads: a strongly skewed
// catalogue, few one-hit wonders, mostly small files (manifests,
// signatures, small packages) with a tail of archives and images up to
// 4 GiB.
func Downloads(requests int, seed uint64) Config {
	return Config{
		Name:     "downloads",
		Requests: requests,
		Objects:  max(requests/50, 1),
		Alpha:    1.0,
		Drift:    0.002,
		OneHit:   0.04,
		Sizes: Sizes{
			Median: 2 << 10, Sigma: 2.0,
			TailShare: 0.01, TailMin: 8 << 20, TailAlpha: 1.2,
			MinSize: 100, MaxSize: 4 << 30,
		},
		Seed: seed,
	}
}

// Media is images and video segments: a flatter catalogue, many one-hit
// wonders (the long tail of a large library), sizes around a few hundred
// KiB with a tail of whole videos up to 2 GiB.
func Media(requests int, seed uint64) Config {
	return Config{
		Name:     "media",
		Requests: requests,
		Objects:  max(requests/20, 1),
		Alpha:    0.9,
		Drift:    0.01,
		OneHit:   0.4,
		Sizes: Sizes{
			Median: 200 << 10, Sigma: 1.2,
			TailShare: 0.02, TailMin: 16 << 20, TailAlpha: 1.5,
			MinSize: 1 << 10, MaxSize: 2 << 30,
		},
		Seed: seed,
	}
}

// Generate returns the trace c describes; the same c gives the same trace.
func Generate(c Config) []Request {
	rng := rand.New(rand.NewPCG(c.Seed, 0x6f7574706f7374)) // "outpost"
	g := &generator{c: c, rng: rng, cdf: zipfCDF(c.Objects, c.Alpha)}
	g.catalogue = make([]Request, c.Objects)
	for r := range g.catalogue {
		g.catalogue[r] = g.newObject()
	}
	trace := make([]Request, c.Requests)
	for i := range trace {
		if rng.Float64() < c.OneHit {
			trace[i] = g.newObject()
			continue
		}
		trace[i] = g.catalogue[g.rank()]
		if rng.Float64() < c.Drift {
			a, b := g.rank(), rng.IntN(len(g.catalogue))
			g.catalogue[a], g.catalogue[b] = g.catalogue[b], g.catalogue[a]
		}
	}
	return trace
}

type generator struct {
	c         Config
	rng       *rand.Rand
	cdf       []float64
	catalogue []Request // by popularity rank
	next      uint64
}

// newObject returns an object never seen before. Keys are spread so that
// they say nothing of rank or age.
func (g *generator) newObject() Request {
	g.next++
	return Request{Key: Mix(g.next ^ g.c.Seed<<32), Size: g.c.Sizes.draw(g.rng)}
}

// rank draws a catalogue rank from the Zipf distribution.
func (g *generator) rank() int {
	return min(sort.SearchFloat64s(g.cdf, g.rng.Float64()), len(g.cdf)-1)
}

// zipfCDF is the cumulative Zipf(alpha) distribution over n ranks,
// normalised to end at 1 (math/rand's Zipf needs alpha > 1).
func zipfCDF(n int, alpha float64) []float64 {
	cdf := make([]float64, n)
	sum := 0.0
	for r := range cdf {
		sum += math.Pow(float64(r+1), -alpha)
		cdf[r] = sum
	}
	for r := range cdf {
		cdf[r] /= sum
	}
	return cdf
}

func (s Sizes) draw(rng *rand.Rand) int64 {
	var v float64
	if rng.Float64() < s.TailShare {
		v = s.TailMin / math.Pow(1-rng.Float64(), 1/s.TailAlpha)
	} else {
		v = s.Median * math.Exp(s.Sigma*rng.NormFloat64())
	}
	return max(s.MinSize, min(s.MaxSize, int64(v)))
}

// Footprint returns the number of distinct objects in trace and the sum of
// their sizes: what a cache holding everything would store.
func Footprint(trace []Request) (objects int, bytes int64) {
	seen := make(map[uint64]struct{}, len(trace)/2)
	for _, r := range trace {
		if _, ok := seen[r.Key]; !ok {
			seen[r.Key] = struct{}{}
			bytes += r.Size
		}
	}
	return len(seen), bytes
}

// Mix is the splitmix64 finaliser: it spreads sequential numbers over
// the key space (the generator's keys; a simulated policy's hashes).
func Mix(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
