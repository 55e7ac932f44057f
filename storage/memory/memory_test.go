package memory

import (
	"errors"
	"fmt"
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

func TestWeightIncludesKeyAndOverhead(t *testing.T) {
	// Room for exactly four objects of 100-byte bodies under 1-byte keys.
	per := int64(1+len("meta")+100) + ObjectOverhead
	s := New(Options{Capacity: 4 * per})
	for i := range 5 {
		commit(t, s, fmt.Sprint(i), make([]byte, 100))
	}
	st := s.Stats()
	if st.Objects != 4 || st.Evictions != 1 || st.Bytes != 4*(4+100) {
		t.Fatalf("Stats = %+v, want 4 objects of 104 bytes and 1 eviction", st)
	}
}
