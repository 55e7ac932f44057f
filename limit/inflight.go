package limit

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
)

const inflightShards = 64

// InFlight counts what is open per key right now (requests being served,
// connections held) and refuses to open more than PerKey for one key or
// Total overall. Use one for in-flight requests per client and another,
// keyed by IPKey, for connections per client IP with a total cap.
//
// Only keys with something open take memory, so its size is bounded by
// Total (or by whatever bounds concurrency: the connection limit). Keys are
// told apart by a seeded 64-bit hash; two keys sharing one would share a
// count, a chance too small to matter below billions of open keys.
//
// The zero value has no limits. An InFlight is safe for concurrent use and
// must not be copied once used.
type InFlight struct {
	// PerKey is the most a key may hold open at once; zero means no limit.
	PerKey int
	// Total is the most all keys together may hold open; zero means no
	// limit.
	Total int

	seedOnce sync.Once
	seed     maphash.Seed
	total    atomic.Int64
	shards   [inflightShards]inflightShard
}

type inflightShard struct {
	mu     sync.Mutex
	counts map[uint64]int32 // keys with at least one open; guarded by mu
	_      [48]byte         // one shard per 64-byte cache line
}

// Ticket is one acquisition; give it back with Release exactly once. The
// zero Ticket releases nothing.
type Ticket struct {
	f *InFlight
	h uint64
}

// Acquire opens one for key and reports whether the limits allowed it. A
// refused acquisition must not be released.
func (f *InFlight) Acquire(key []byte) (Ticket, bool) {
	f.seedOnce.Do(func() { f.seed = maphash.MakeSeed() })
	if f.Total > 0 {
		if f.total.Add(1) > int64(f.Total) {
			f.total.Add(-1)
			return Ticket{}, false
		}
	} else {
		f.total.Add(1)
	}
	h := maphash.Bytes(f.seed, key)
	s := &f.shards[h%inflightShards]
	s.mu.Lock()
	n := s.counts[h]
	if f.PerKey > 0 && int(n) >= f.PerKey {
		s.mu.Unlock()
		f.total.Add(-1)
		return Ticket{}, false
	}
	if s.counts == nil {
		s.counts = make(map[uint64]int32)
	}
	s.counts[h] = n + 1
	s.mu.Unlock()
	return Ticket{f, h}, true
}

// Release closes what t opened.
func (t Ticket) Release() {
	f := t.f
	if f == nil {
		return
	}
	s := &f.shards[t.h%inflightShards]
	s.mu.Lock()
	if n := s.counts[t.h]; n > 1 {
		s.counts[t.h] = n - 1
	} else {
		delete(s.counts, t.h)
	}
	s.mu.Unlock()
	f.total.Add(-1)
}

// Count returns how many key holds open now.
func (f *InFlight) Count(key []byte) int {
	f.seedOnce.Do(func() { f.seed = maphash.MakeSeed() })
	h := maphash.Bytes(f.seed, key)
	s := &f.shards[h%inflightShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	return int(s.counts[h])
}

// Open returns how many are open over all keys.
func (f *InFlight) Open() int { return int(f.total.Load()) }
