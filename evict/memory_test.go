package evict

import (
	"math/rand/v2"
	"runtime"
	"testing"
)

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestBytesPerKey measures with runtime.MemStats what the policy holds per
// key: it fills a policy with a million resident keys, then inserts a
// million more, which pushes about 900,000 of them into the ghost, and
// checks the heap grown per resident key (at most 64 bytes), per ghost key
// (at most 24) and BytesPerKey against their sum.
func TestBytesPerKey(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a policy with two million keys")
	}
	const n = 1_000_000
	rng := rand.New(rand.NewPCG(3, 4))
	noEvict := func(uint64) {}
	base := liveHeap()
	p := New(n)
	for range n {
		p.Insert(rng.Uint64(), 1, noEvict)
	}
	filled := liveHeap()
	for range n {
		p.Insert(rng.Uint64(), 1, noEvict)
	}
	ghosted := liveHeap()
	resident := float64(filled-base) / float64(p.Len())
	ghosts := p.ghost.tail - p.ghost.head
	perGhost := float64(ghosted-filled) / float64(ghosts)
	t.Logf("%d resident keys: %.1f bytes each; %d ghost keys: %.1f bytes each", p.Len(), resident, ghosts, perGhost)
	if p.Len() != n || ghosts < n/2 {
		t.Fatalf("%d resident keys and %d in the ghost, want %d and more than %d", p.Len(), ghosts, n, n/2)
	}
	if resident > 64 || perGhost > 24 || resident+perGhost > BytesPerKey {
		t.Errorf("%.1f bytes a resident key (want at most 64), %.1f a ghost key (at most 24), %.1f together (BytesPerKey: %d)",
			resident, perGhost, resident+perGhost, BytesPerKey)
	}
	runtime.KeepAlive(p)
}
