package upstream

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
)

// Policy builds the Selector for one group of servers (the primaries or the
// backups). Build runs whenever the server set changes, never per request,
// so it may precompute (a hash ring, a weighted schedule).
type Policy interface {
	Build(servers []*Server) Selector
}

// Selector chooses a server for a request from a group built by its Policy.
// Select returns the index of the preferred server among those
// c.Allowed accepts, or -1 when there is none. Called again for a retry, it
// returns the next preference: servers already tried are no longer allowed.
// Select is called concurrently and must not allocate.
type Selector interface {
	Select(c *Candidates) int
}

// RoundRobin takes the servers in turn, ignoring weights.
type RoundRobin struct{}

var _ Policy = RoundRobin{}

// Build implements Policy.
func (RoundRobin) Build([]*Server) Selector { return new(roundRobin) }

type roundRobin struct{ next atomic.Uint64 }

func (r *roundRobin) Select(c *Candidates) int {
	return c.firstAllowedFrom(int(r.next.Add(1) % uint64(c.Len())))
}

// firstAllowedFrom returns the first allowed index at or after start,
// wrapping around, or -1.
func (c *Candidates) firstAllowedFrom(start int) int {
	n := c.Len()
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		if c.Allowed(i) {
			return i
		}
	}
	return -1
}

// randomAllowed returns a uniformly random allowed index other than not, or
// -1. A few random draws find one when most servers are allowed; otherwise
// a scan from a random start does.
func (c *Candidates) randomAllowed(not int) int {
	n := c.Len()
	for range 3 {
		if i := rand.IntN(n); i != not && c.Allowed(i) {
			return i
		}
	}
	start := rand.IntN(n)
	for k := range n {
		i := (start + k) % n
		if i != not && c.Allowed(i) {
			return i
		}
	}
	return -1
}

// Random picks a random server, in proportion to the weights.
type Random struct{}

var _ Policy = Random{}

// Build implements Policy.
func (Random) Build(servers []*Server) Selector {
	r := &random{}
	total := 0
	for _, s := range servers {
		total += s.weight()
		r.cumulative = append(r.cumulative, total)
	}
	if total == len(servers) {
		r.cumulative = nil // all weights equal: a plain draw will do
	}
	return r
}

type random struct {
	cumulative []int // running sum of weights; nil when all are 1
}

func (r *random) Select(c *Candidates) int {
	if r.cumulative != nil {
		n := rand.IntN(r.cumulative[len(r.cumulative)-1])
		i, _ := slices.BinarySearch(r.cumulative, n+1)
		if c.Allowed(i) {
			return i
		}
	}
	// A retry, or a draw of a server that is down: any allowed server
	// will do; weights matter for the bulk of traffic, not for this.
	return c.randomAllowed(-1)
}

// LeastRequest draws two allowed servers at random and takes the one with
// fewer requests in flight per unit of weight ("power of two choices"): it
// avoids busy servers without the herding of always taking the least busy.
type LeastRequest struct{}

var _ Policy = LeastRequest{}

// Build implements Policy.
func (LeastRequest) Build([]*Server) Selector { return p2c{cost: inflightCost} }

func inflightCost(c *Candidates, i int) float64 {
	s := c.Server(i)
	return float64(s.st.inflight.Load()+1) / float64(s.weight())
}

// PeakEWMA is power of two choices on expected latency: each server's cost
// is its peak-EWMA latency (a slow response raises it at once, fast ones
// bring it down gradually, and it decays while the server is idle) times
// its requests in flight plus one, over its weight. A server with no
// latency sample yet costs nothing when idle and a large penalty when busy,
// so new servers are tried without being flooded. This is the balancer of
// Finagle and Linkerd.
type PeakEWMA struct{}

var _ Policy = PeakEWMA{}

// Build implements Policy.
func (PeakEWMA) Build([]*Server) Selector { return p2c{cost: ewmaCost} }

// unmeasuredPenalty is the cost of a busy server with no latency sample:
// larger than any real latency (in nanoseconds).
const unmeasuredPenalty = math.MaxInt32 * 1e3

func ewmaCost(c *Candidates, i int) float64 {
	s := c.Server(i)
	inflight := s.st.inflight.Load()
	lat := s.latency(c.now, c.decay)
	if lat == 0 {
		if inflight == 0 {
			return 0
		}
		return unmeasuredPenalty
	}
	return lat * float64(inflight+1) / float64(s.weight())
}

// p2c is power of two choices over a cost function.
type p2c struct {
	cost func(c *Candidates, i int) float64
}

func (p p2c) Select(c *Candidates) int {
	a, b := c.randomPair()
	if a < 0 {
		return -1
	}
	if b < 0 || p.cost(c, a) <= p.cost(c, b) {
		return a
	}
	return b
}

// randomPair returns two distinct random allowed indexes, or one and -1
// when only one is allowed, or -1, -1. The common case, both drawn and
// allowed, costs one random number.
func (c *Candidates) randomPair() (int, int) {
	n := c.Len()
	if n >= 2 {
		r := rand.Uint64()
		// Lemire's multiply-shift maps 32 random bits onto [0, n).
		a := int((r & math.MaxUint32) * uint64(n) >> 32)
		b := int((r >> 32) * uint64(n-1) >> 32)
		if b >= a {
			b++
		}
		if c.Allowed(a) && c.Allowed(b) {
			return a, b
		}
	}
	a := c.randomAllowed(-1)
	if a < 0 {
		return -1, -1
	}
	return a, c.randomAllowed(a)
}
