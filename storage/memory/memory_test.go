package memory

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/storagetest"
)

func TestStoreConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Store {
		return New(Options{Capacity: 1 << 20})
	})
}

func commit(t testing.TB, s *Store, key string, body []byte) {
	t.Helper()
	w, err := s.Create(key, []byte("meta"), int64(len(body)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

func TestZeroOptionsWork(t *testing.T) {
	s := New(Options{})
	if got := s.Stats().Capacity; got != defaultCapacity {
		t.Fatalf("Capacity = %d, want %d", got, defaultCapacity)
	}
	commit(t, s, "k", []byte("body"))
	if _, err := s.Lookup("k"); err != nil {
		t.Fatalf("Lookup: %v", err)
	}
}

var maxObjectTests = []struct {
	name      string
	opts      Options
	size      int
	createErr bool // refused by Create from the size hint
	tooLarge  bool
}{
	{"default max is an eighth of capacity", Options{Capacity: 80_000}, 10_000, false, false},
	{"over the default max", Options{Capacity: 80_000}, 10_001, true, true},
	{"configured max", Options{Capacity: 80_000, MaxObjectSize: 20_000}, 20_000, false, false},
	{"over the configured max", Options{Capacity: 80_000, MaxObjectSize: 20_000}, 20_001, true, true},
}

func TestMaxObjectSize(t *testing.T) {
	for _, tt := range maxObjectTests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(tt.opts)
			_, err := s.Create("k", nil, int64(tt.size))
			if (err != nil) != tt.createErr || err != nil && !errors.Is(err, storage.ErrTooLarge) {
				t.Fatalf("Create with size hint %d: %v", tt.size, err)
			}
			w, err := s.Create("k", nil, -1)
			if err != nil {
				t.Fatalf("Create without size hint: %v", err)
			}
			_, err = w.Write(make([]byte, tt.size))
			if errors.Is(err, storage.ErrTooLarge) != tt.tooLarge {
				t.Fatalf("Write of %d bytes: %v", tt.size, err)
			}
			if err := w.Commit(); (err != nil) != tt.tooLarge {
				t.Fatalf("Commit: %v", err)
			}
		})
	}
}

func TestLookupReturnsBodyWithoutCopy(t *testing.T) {
	s := New(Options{Capacity: 1 << 20})
	commit(t, s, "k", []byte("hello"))
	a, _ := s.Lookup("k")
	b, _ := s.Lookup("k")
	if &a.(storage.Bytes).Bytes()[0] != &b.(storage.Bytes).Bytes()[0] {
		t.Fatal("two lookups returned different copies of the body")
	}
}

func TestLookupHitDoesNotAllocate(t *testing.T) {
	s := New(Options{Capacity: 1 << 20})
	commit(t, s, "k", []byte("hello"))
	allocs := testing.AllocsPerRun(100, func() {
		o, err := s.Lookup("k")
		if err != nil {
			t.Fatal(err)
		}
		o.Close()
	})
	if allocs != 0 {
		t.Fatalf("Lookup hit allocates %v times", allocs)
	}
}

func TestWeightIsAllocationPlusOverhead(t *testing.T) {
	// Room for exactly ten objects of 100-byte bodies under 1-byte keys
	// (each within the policy's probation share, a tenth): the allocator
	// rounds the 5 bytes of key and metadata up to 8, and the body up to
	// 112.
	per := int64(8+112) + ObjectOverhead
	s := New(Options{Capacity: 10 * per})
	for i := range 11 {
		commit(t, s, string(rune('a'+i)), make([]byte, 100))
	}
	st := s.Stats()
	if st.Objects != 10 || st.Evictions != 1 || st.Bytes != 10*(4+100) {
		t.Fatalf("Stats = %+v, want 10 objects of 104 bytes and 1 eviction", st)
	}
}

// FuzzStoreMatchesMap runs byte-coded commits, aborts, meta updates and
// deletes on a store too large to evict, and checks every lookup and the
// counters against a plain map.
func FuzzStoreMatchesMap(f *testing.F) {
	f.Add([]byte{0x01, 0x41, 0x81, 0xc1, 0x02, 0x02})
	f.Add([]byte{0x00, 0x00, 0x40, 0x80, 0xc0, 0x13, 0x53})
	f.Fuzz(func(t *testing.T, ops []byte) {
		s := New(Options{Capacity: 1 << 20})
		model := map[string]string{} // key -> meta + "|" + body
		for i, op := range ops {
			key := fmt.Sprint(op & 0x7)
			body := strings.Repeat(string(rune('a'+i%26)), int(op>>3&0x7)*10)
			switch op >> 6 {
			case 0: // commit
				commit(t, s, key, []byte(body))
				model[key] = "meta|" + body
			case 1: // abort
				w, _ := s.Create(key, nil, -1)
				w.Write([]byte(body))
				w.Abort()
			case 2: // update meta
				err := s.UpdateMeta(key, []byte(body))
				if v, ok := model[key]; ok {
					_, b, _ := strings.Cut(v, "|")
					model[key] = body + "|" + b
				} else if !errors.Is(err, storage.ErrNotFound) {
					t.Fatalf("op %d: UpdateMeta of missing %q: %v", i, key, err)
				}
			case 3:
				if _, ok := model[key]; s.Delete(key) != ok {
					t.Fatalf("op %d: Delete(%q) disagrees with the model", i, key)
				}
				delete(model, key)
			}
		}
		var bytes int64
		for key, v := range model {
			o, err := s.Lookup(key)
			if err != nil {
				t.Fatalf("Lookup(%q): %v", key, err)
			}
			if got := string(o.Meta()) + "|" + string(o.(storage.Bytes).Bytes()); got != v {
				t.Fatalf("Lookup(%q) = %q, want %q", key, got, v)
			}
			bytes += int64(len(v) - 1)
		}
		if st := s.Stats(); st.Objects != int64(len(model)) || st.Bytes != bytes {
			t.Fatalf("Stats = %+v, want %d objects, %d bytes", st, len(model), bytes)
		}
	})
}
