package memory

import (
	"math/rand/v2"
	"sync"
	"testing"
)

// TestIndexMatchesMap puts and removes random hashes, enough to grow and
// shrink the table and fill it with tombstones, and checks it against a map.
func TestIndexMatchesMap(t *testing.T) {
	var x index
	model := map[uint64]*object{}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range 200_000 {
		h := r.Uint64N(5000) * 0x9E3779B97F4A7C15 // spread, and sometimes 0
		if i > 100_000 && i%2 == 0 || r.IntN(3) == 0 {
			if got := x.remove(h); got != model[h] {
				t.Fatalf("op %d: remove(%x) = %p, want %p", i, h, got, model[h])
			}
			delete(model, h)
			continue
		}
		o := &object{hash: h}
		if got := x.put(o); got != model[h] {
			t.Fatalf("op %d: put(%x) replaced %p, want %p", i, h, got, model[h])
		}
		model[h] = o
	}
	if x.live != len(model) {
		t.Fatalf("live = %d, want %d", x.live, len(model))
	}
	for h, o := range model {
		if got := x.get(h); got != o {
			t.Fatalf("get(%x) = %p, want %p", h, got, o)
		}
	}
	seen := 0
	x.each(func(o *object) bool {
		if model[o.hash] != o {
			t.Fatalf("each visited %p, not in the model", o)
		}
		seen++
		return true
	})
	if seen != len(model) {
		t.Fatalf("each visited %d objects, want %d", seen, len(model))
	}
	if n := len(x.table.Load().slots); n > max(minSlots, 4*len(model)) {
		t.Fatalf("%d slots for %d objects after removals: the table did not shrink", n, len(model))
	}
}

// TestIndexReadersDuringRebuilds reads a key that is never removed while
// other keys are put and removed, so the table is rebuilt under the readers
// (run with -race).
func TestIndexReadersDuringRebuilds(t *testing.T) {
	s := New(Options{Capacity: 1 << 30})
	commit(t, s, "stays", []byte("x"))
	var wg sync.WaitGroup
	done := make(chan struct{})
	for range 2 {
		wg.Go(func() {
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, err := s.Lookup("stays"); err != nil {
					t.Error("a resident key was missed during a rebuild")
					return
				}
			}
		})
	}
	for i := range 20_000 {
		key := string(rune('a'+i%26)) + string(rune(i))
		commit(t, s, key, nil)
		if i%3 != 0 {
			s.Delete(key)
		}
	}
	close(done)
	wg.Wait()
}
