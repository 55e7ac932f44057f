package upstream

import "sync/atomic"

// WeightedRoundRobin is nginx's smooth weighted round robin: over every
// cycle of Σweight picks each server is chosen exactly weight times, and the
// picks of a heavy server are spread out rather than bunched (weights 5,1,1
// give a a b a c a a, not a a a a a b c).
//
// The cycle is precomputed by Build, so Select is one atomic increment and a
// table read, with no lock. Weights are first divided by their greatest
// common divisor; a cycle longer than 65536 picks is scaled down to that
// length, each weight keeping at least one pick.
type WeightedRoundRobin struct{}

var _ Policy = WeightedRoundRobin{}

const maxWeightedCycle = 1 << 16

// Build implements Policy.
func (WeightedRoundRobin) Build(servers []*Server) Selector {
	weights := make([]int, len(servers))
	for i, s := range servers {
		weights[i] = s.weight()
	}
	return &weightedRoundRobin{cycle: smoothCycle(scaleWeights(weights))}
}

type weightedRoundRobin struct {
	cycle []int32 // server indexes in pick order
	next  atomic.Uint64
}

// maxCycleScan bounds how far Select looks ahead in the cycle for an
// allowed server before falling back to a scan of the servers.
const maxCycleScan = 64

func (w *weightedRoundRobin) Select(c *Candidates) int {
	n := uint64(len(w.cycle))
	start := w.next.Add(1) - 1
	for k := range min(n, maxCycleScan) {
		if i := int(w.cycle[(start+k)%n]); c.Allowed(i) {
			return i
		}
	}
	return c.firstAllowedFrom(int(w.cycle[start%n]))
}

// scaleWeights divides weights by their gcd and shrinks them so their sum
// stays within maxWeightedCycle.
func scaleWeights(weights []int) []int {
	g := 0
	for _, w := range weights {
		g = gcd(g, w)
	}
	total := 0
	for i := range weights {
		weights[i] /= g
		total += weights[i]
	}
	if total > maxWeightedCycle {
		for i, w := range weights {
			weights[i] = max(1, w*maxWeightedCycle/total)
		}
	}
	return weights
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// smoothCycle runs nginx's algorithm for one full cycle: each pick adds
// every weight to its server's current weight, takes the server with the
// highest current weight (the first on ties) and subtracts the total from
// it. After Σweight picks every current weight is back to zero, so the
// sequence repeats.
func smoothCycle(weights []int) []int32 {
	total := 0
	for _, w := range weights {
		total += w
	}
	current := make([]int, len(weights))
	cycle := make([]int32, total)
	for k := range cycle {
		best := 0
		for i, w := range weights {
			current[i] += w
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= total
		cycle[k] = int32(best)
	}
	return cycle
}
