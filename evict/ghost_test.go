package evict

import (
	"math/rand/v2"
	"testing"
)

// TestGhostMatchesModel drives the ghost and a plain model of it (a slice
// of slots and a map from key to its latest slot) with the same adds and
// removes, with weights from 0 to beyond 32 bits, and sequence numbers
// that cross 2^32, and checks that they remember the same keys and weigh
// the same.
func TestGhostMatchesModel(t *testing.T) {
	type slot struct {
		key    uint64
		weight int64
	}
	const limit = 1 << 34
	start := uint64(1<<32 - 3*ghostBlockLen)
	g := &ghost{limit: limit, base: start, head: start, tail: start}
	var ring []slot
	latest := map[uint64]int{} // key -> index in ring, counted from the first slot ever
	popped, weight := 0, int64(0)
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 200_000 {
		key := rng.Uint64N(5000)
		if rng.IntN(3) == 0 {
			_, want := latest[key]
			delete(latest, key)
			if got := g.remove(key); got != want {
				t.Fatalf("op %d: remove(%d) = %v, want %v", i, key, got, want)
			}
			continue
		}
		if _, ok := latest[key]; ok {
			continue // add takes keys not remembered
		}
		w := rng.Int64N(1 << 22)
		if rng.IntN(100) == 0 {
			w = 1<<32 + rng.Int64N(1<<32)
		}
		for popped < len(ring) && weight+w > limit {
			s := ring[popped]
			weight -= s.weight
			if latest[s.key] == popped {
				delete(latest, s.key)
			}
			popped++
		}
		g.add(key, w)
		ring = append(ring, slot{key, w})
		latest[key] = len(ring) - 1
		weight += w
		if g.weight != weight || g.set.live != len(latest) || g.tail-g.head != uint64(len(ring)-popped) {
			t.Fatalf("op %d: ghost weighs %d with %d keys in %d slots, model %d with %d in %d",
				i, g.weight, g.set.live, g.tail-g.head, weight, len(latest), len(ring)-popped)
		}
	}
	if g.tail < 1<<32 {
		t.Fatalf("sequence numbers ended at %d, below 2^32", g.tail)
	}
	for key := range latest {
		if !g.remove(key) {
			t.Fatalf("key %d remembered by the model, not the ghost", key)
		}
	}
}
