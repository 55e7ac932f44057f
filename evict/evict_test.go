package evict

import (
	"sync"
	"testing"
)

// insertAll inserts keys with the given weight and returns the evicted keys.
func insertAll(t *testing.T, p *Policy, weight int64, keys ...uint64) []uint64 {
	t.Helper()
	var evicted []uint64
	for _, k := range keys {
		p.Insert(k, weight, func(v uint64) { evicted = append(evicted, v) })
	}
	return evicted
}

func seq(from, n uint64) []uint64 {
	keys := make([]uint64, n)
	for i := range keys {
		keys[i] = from + uint64(i)
	}
	return keys
}

func TestWeightStaysWithinCapacity(t *testing.T) {
	p := New(1000)
	resident := map[uint64]bool{}
	for k := range uint64(5000) {
		w := int64(1 + k%97)
		if p.Insert(k, w, func(v uint64) {
			if !resident[v] {
				t.Fatalf("evicted key %d was not resident", v)
			}
			delete(resident, v)
		}) {
			resident[k] = true
		}
		if got := p.Weight(); got > 1000 {
			t.Fatalf("after insert %d: weight %d > capacity 1000", k, got)
		}
	}
	if p.Len() != len(resident) {
		t.Fatalf("Len = %d, want %d", p.Len(), len(resident))
	}
	for k := range resident {
		if !p.Contains(k) {
			t.Fatalf("key %d admitted and never evicted but not resident", k)
		}
	}
}

func TestInsertRefusesWhatCannotFit(t *testing.T) {
	p := New(100)
	if p.Insert(1, 101, func(uint64) { t.Fatal("evicted for an object that cannot fit") }) {
		t.Fatal("object heavier than the capacity admitted")
	}
	if !p.Insert(2, 100, func(uint64) {}) {
		t.Fatal("object of exactly the capacity refused on an empty policy")
	}
}

func TestInsertOfResidentKeyReplacesWeight(t *testing.T) {
	p := New(100)
	insertAll(t, p, 10, 1, 2)
	if ev := insertAll(t, p, 50, 1); len(ev) != 0 {
		t.Fatalf("re-insert evicted %v", ev)
	}
	if p.Weight() != 60 || p.Len() != 2 {
		t.Fatalf("weight %d len %d, want 60 and 2", p.Weight(), p.Len())
	}
	if p.Insert(1, 200, func(uint64) {}) || p.Contains(1) {
		t.Fatal("re-insert too heavy to fit should refuse and forget the key")
	}
	if p.Weight() != 10 {
		t.Fatalf("weight %d after refused re-insert, want 10", p.Weight())
	}
}

func TestRemoveForgetsKey(t *testing.T) {
	p := New(100)
	insertAll(t, p, 10, 1, 2, 3)
	p.Remove(2)
	p.Remove(42) // unknown: no effect
	if p.Contains(2) || p.Len() != 2 || p.Weight() != 20 {
		t.Fatalf("after Remove: contains=%v len=%d weight=%d", p.Contains(2), p.Len(), p.Weight())
	}
	p.Touch(2) // touching a removed key is harmless
}

func TestHitKeysSurviveAScan(t *testing.T) {
	p := New(100)
	hot := seq(0, 20)
	insertAll(t, p, 1, hot...)
	for range 3 {
		for _, k := range hot {
			p.Touch(k)
		}
	}
	// A scan of one-time keys, five times the capacity.
	for i, k := range seq(1000, 500) {
		p.Insert(k, 1, func(uint64) {})
		if i%50 == 0 {
			for _, h := range hot {
				p.Touch(h)
			}
		}
	}
	for _, k := range hot {
		if !p.Contains(k) {
			t.Fatalf("hot key %d evicted by a scan", k)
		}
	}
}

// A newcomer is admitted even when every resident key was inserted more
// often: a door-keeping frequency filter made a refused object miss again
// before it got in, which cost hit ratio on recency-heavy traffic.
func TestNewKeyIsAdmittedOverFrequentlyInsertedKeys(t *testing.T) {
	p := New(50)
	for range 4 {
		for _, k := range seq(1000, 50) {
			p.Remove(k)
			p.Insert(k, 1, func(uint64) {})
		}
	}
	const k = 7
	if !p.Insert(k, 1, func(uint64) {}) || !p.Contains(k) {
		t.Fatal("new key that fits refused")
	}
}

// A new key heavier than the small FIFO's share would flush it: with no
// room it is remembered in the ghost, not cached, and admitted to main when
// it comes back (cache on second hit). With room it is admitted at once.
func TestHeavyNewKeyIsAdmittedOnItsSecondInsert(t *testing.T) {
	p := New(100) // small FIFO: 10
	if !p.Insert(1, 50, func(uint64) {}) {
		t.Fatal("heavy key refused when there is room")
	}
	p.Remove(1)
	insertAll(t, p, 1, seq(1000, 100)...)
	if ev := insertAll(t, p, 20, 7); len(ev) != 0 || p.Contains(7) {
		t.Fatalf("heavy new key cached on first sight (evicted %v)", ev)
	}
	if ev := insertAll(t, p, 20, 7); len(ev) != 20 || !p.Contains(7) {
		t.Fatalf("heavy key not admitted on its second insert (evicted %d keys)", len(ev))
	}
	// It went to main: a scan through the small FIFO does not evict it.
	insertAll(t, p, 1, seq(5000, 60)...)
	if !p.Contains(7) {
		t.Fatal("heavy key readmitted through the ghost evicted by a scan")
	}
}

// A store reopening its files restores them oldest first: a heavy one is
// admitted at once, pushing older ones out, so the newest are kept.
func TestRestoreAdmitsHeavyKeyAtOnce(t *testing.T) {
	p := New(100)
	insertAll(t, p, 1, seq(1000, 100)...)
	if !p.Restore(7, 40, func(uint64) {}) || !p.Contains(7) {
		t.Fatal("restored heavy key refused")
	}
}

func TestEvictedKeyReturnsThroughGhost(t *testing.T) {
	p := New(100)
	insertAll(t, p, 1, 1)
	insertAll(t, p, 1, seq(1000, 150)...) // pushes key 1 out of the small FIFO
	if p.Contains(1) {
		t.Fatal("key 1 still resident after a long scan")
	}
	insertAll(t, p, 1, 1)
	if !p.Contains(1) {
		t.Fatal("key remembered by the ghost was not readmitted")
	}
	// Readmitted to main: a scan shorter than main's share does not evict it.
	insertAll(t, p, 1, seq(5000, 60)...)
	if !p.Contains(1) {
		t.Fatal("ghost-readmitted key evicted by a scan through the small FIFO")
	}
}

func TestConcurrentUseKeepsInvariants(t *testing.T) {
	p := New(500)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 5000 {
				k := uint64((i*7 + g*13) % 1500)
				switch i % 4 {
				case 0, 1:
					p.Touch(k)
				case 2:
					p.Insert(k, int64(1+k%9), func(uint64) {})
				case 3:
					if i%40 == 3 {
						p.Remove(k)
					}
				}
			}
		})
	}
	wg.Wait()
	if w := p.Weight(); w > 500 {
		t.Fatalf("weight %d > capacity 500", w)
	}
	n := 0
	p.index.Range(func(any, any) bool { n++; return true })
	if n != p.Len() {
		t.Fatalf("index holds %d keys, queues %d", n, p.Len())
	}
}

// FuzzPolicyKeepsInvariants applies a byte-coded sequence of inserts,
// touches and removes and checks the weight bound and that evictions only
// name resident keys.
func FuzzPolicyKeepsInvariants(f *testing.F) {
	f.Add([]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9})
	f.Add([]byte{0x10, 0x10, 0x10, 0x91, 0x92, 0x22, 0x33, 0xf0})
	f.Add(make([]byte, 200))
	f.Fuzz(func(t *testing.T, ops []byte) {
		p := New(64)
		resident := map[uint64]bool{}
		for i, op := range ops {
			key := uint64(op & 0x1f)
			switch op >> 6 {
			case 0, 1:
				weight := int64(i%13) + int64(op>>5&1)*60
				ok := p.Insert(key, weight, func(v uint64) {
					if !resident[v] || v == key {
						t.Fatalf("op %d: evicted %d (inserting %d), resident %v", i, v, key, resident)
					}
					delete(resident, v)
				})
				resident[key] = ok
			case 2:
				p.Touch(key)
			case 3:
				p.Remove(key)
				delete(resident, key)
			}
			if p.Weight() > 64 {
				t.Fatalf("op %d: weight %d > 64", i, p.Weight())
			}
		}
		for k, ok := range resident {
			if p.Contains(k) != ok {
				t.Fatalf("key %d: Contains = %v, want %v", k, !ok, ok)
			}
		}
	})
}
