package tiered

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/disk"
	"github.com/outpost-edge/outpost/storage/memory"
	"github.com/outpost-edge/outpost/storage/storagetest"
)

func TestConformanceOverMemory(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return New(memory.New(memory.Options{Capacity: 1 << 20}), memory.New(memory.Options{Capacity: 4 << 20}), 64<<10)
	})
}

func TestConformanceOverDisk(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return New(memory.New(memory.Options{Capacity: 1 << 20}), openDisk(t, disk.Options{Capacity: 4 << 20}), 64<<10)
	})
}

func openDisk(t *testing.T, opts disk.Options) *disk.Store {
	t.Helper()
	d, err := disk.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// newTiers returns a tiered store over a 1 MiB memory tier and a 16 MiB
// disk tier, both also returned for inspection.
func newTiers(t *testing.T) (*Store, *memory.Store, *disk.Store) {
	t.Helper()
	fast := memory.New(memory.Options{Capacity: 1 << 20})
	slow := openDisk(t, disk.Options{Capacity: 16 << 20})
	s := New(fast, slow, 64<<10)
	t.Cleanup(func() { s.Close() })
	return s, fast, slow
}

func put(t *testing.T, s storage.Store, key string, meta, b []byte) {
	t.Helper()
	w, err := s.Create(key, meta, int64(len(b)))
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write(%q): %v", key, err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
	if r, ok := w.(storage.Releaser); ok {
		r.Release()
	}
}

func body(key string, n int) []byte { return bytes.Repeat([]byte(key[:1]), n) }

// lookup opens key in st and returns its body, or nil on a miss.
func lookup(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	o, err := st.Lookup(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatalf("Lookup(%q): %v", key, err)
	}
	defer o.Close()
	b, err := io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b
}

// waitPromoted waits until n promotions have been made.
func waitPromoted(t *testing.T, s *Store, n int64) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); s.promoted.Load() < n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d promotions after 10s, want %d", s.promoted.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOnlyObjectsHitTwiceArePromoted(t *testing.T) {
	s, fast, slow := newTiers(t)
	for _, k := range []string{"once", "twice", "large"} {
		size := 1000
		if k == "large" {
			size = 100 << 10 // over PromoteMax
		}
		put(t, slow, k, []byte("m"), body(k, size))
	}
	for _, k := range []string{"once", "twice", "twice", "large", "large"} {
		if lookup(t, s, k) == nil {
			t.Fatalf("%q missing", k)
		}
	}
	waitPromoted(t, s, 1) // the copier is FIFO: "once" would have come first
	if lookup(t, fast, "twice") == nil {
		t.Fatal("object hit twice was not promoted")
	}
	for _, k := range []string{"once", "large"} {
		if lookup(t, fast, k) != nil {
			t.Fatalf("%q was promoted", k)
		}
	}
}

func TestHitsKeepTheirTiersInterfaces(t *testing.T) {
	s, fast, slow := newTiers(t)
	put(t, s, "small", nil, body("small", 1000)) // written through to memory too
	put(t, slow, "big", nil, body("big", 100<<10))
	for _, tt := range []struct {
		key  string
		want func(storage.Object) bool
	}{
		{"small", func(o storage.Object) bool { _, ok := o.(storage.Bytes); return ok }},
		{"big", func(o storage.Object) bool { _, ok := o.(io.WriterTo); return ok }},
	} {
		o, err := s.Lookup(tt.key)
		if err != nil {
			t.Fatal(err)
		}
		if !tt.want(o) {
			t.Fatalf("%q: object %T lost its optional interface", tt.key, o)
		}
		o.Close()
	}
	if lookup(t, fast, "small") == nil {
		t.Fatal("a fill was not written through to the fast tier")
	}
}

// stopCopier ends the promotion goroutine, leaving the tiers open; a
// promotion in progress finishes first.
func stopCopier(s *Store) {
	s.once.Do(func() { close(s.quit) })
	s.loop.Wait()
}

// A promotion that raced a change of its key never commits the old copy.
func TestPromotionNeverOutlivesAChange(t *testing.T) {
	for _, tt := range []struct {
		name   string
		change func(s *Store)
		want   []byte // what both tiers may hold after
	}{
		{"deleted", func(s *Store) { s.Delete("k") }, nil},
		{"replaced", func(s *Store) { put(t, s, "k", nil, body("new", 2000)) }, body("new", 2000)},
		{"replaced by a version too large for memory", func(s *Store) {
			put(t, s, "k", nil, body("huge", 200<<10))
		}, body("huge", 200<<10)},
		{"meta updated", func(s *Store) { s.UpdateMeta("k", []byte("new")) }, body("old", 1000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, fast, slow := newTiers(t)
			put(t, slow, "k", []byte("old"), body("old", 1000))
			changed := make(chan struct{})
			s.beforeCommit = func(string) { tt.change(s); close(changed) }
			lookup(t, s, "k")
			lookup(t, s, "k") // queues the promotion
			select {
			case <-changed:
			case <-time.After(10 * time.Second):
				t.Fatal("the promotion never ran")
			}
			stopCopier(s)
			if got := lookup(t, fast, "k"); got != nil && !bytes.Equal(got, tt.want) {
				t.Fatalf("fast tier holds %d bytes of a stale copy", len(got))
			}
			if o, err := fast.Lookup("k"); err == nil {
				if string(o.Meta()) == "old" {
					t.Fatal("fast tier holds the old metadata")
				}
				o.Close()
			}
			if got := lookup(t, slow, "k"); !bytes.Equal(got, tt.want) {
				t.Fatalf("slow tier holds %d bytes, want %d", len(got), len(tt.want))
			}
		})
	}
}

// A version one tier does not take removes that tier's older version, and
// one that neither takes leaves the old version in both.
func TestNewVersionNeverShadowedByAnOlderOne(t *testing.T) {
	for _, tt := range []struct {
		name             string
		fastMax, slowMax int64
		size             int
		stored           bool
	}{
		{"too large for both", 50 << 10, 100 << 10, 200 << 10, false},
		{"too large for memory", 50 << 10, 100 << 10, 70 << 10, true},
		{"too large for disk", 100 << 10, 50 << 10, 70 << 10, true},
		{"small", 50 << 10, 100 << 10, 10, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fast := memory.New(memory.Options{Capacity: 1 << 20, MaxObjectSize: tt.fastMax})
			slow := openDisk(t, disk.Options{Capacity: 16 << 20, MaxObjectSize: tt.slowMax})
			s := New(fast, slow, 64<<10)
			defer s.Close()
			old := body("old", 1000)
			put(t, s, "k", nil, old)
			v := body("new", tt.size)
			w, err := s.Create("k", nil, int64(len(v)))
			if err == nil {
				_, err = w.Write(v)
				err = errors.Join(err, w.Commit())
			}
			switch {
			case tt.stored && err != nil:
				t.Fatalf("storing the new version: %v", err)
			case !tt.stored && !errors.Is(err, storage.ErrTooLarge):
				t.Fatalf("storing the new version: %v, want ErrTooLarge", err)
			case !tt.stored:
				v = old
			}
			if got := lookup(t, s, "k"); !bytes.Equal(got, v) {
				t.Fatalf("Lookup found %d bytes, want %d", len(got), len(v))
			}
			for _, tier := range []storage.Store{fast, slow} {
				if got := lookup(t, tier, "k"); got != nil && !bytes.Equal(got, v) {
					t.Fatalf("%T keeps another version", tier)
				}
			}
		})
	}
}

func TestRangeVisitsEachKeyOnce(t *testing.T) {
	s, fast, slow := newTiers(t)
	put(t, s, "both", nil, body("b", 100))
	put(t, fast, "fast only", nil, body("f", 100))
	put(t, slow, "slow only", nil, body("s", 100))
	seen := map[string]int{}
	s.Range(func(key string, _ []byte) bool { seen[key]++; return true })
	want := map[string]int{"both": 1, "fast only": 1, "slow only": 1}
	if fmt.Sprint(seen) != fmt.Sprint(want) {
		t.Fatalf("Range visited %v, want %v", seen, want)
	}
	if n := s.Stats().Objects; n != 3 {
		t.Fatalf("Stats().Objects = %d, want 3", n)
	}
}

func TestFollowersReadTheFastTier(t *testing.T) {
	s, _, _ := newTiers(t)
	w, err := s.Create("k", nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	b := body("k", 5000)
	w.Write(b)
	w.(*writer).slow.Abort() // the disk writer can no longer be read
	p := make([]byte, len(b))
	if n, err := w.ReadAt(p, 0); n != len(b) || err != nil && err != io.EOF || !bytes.Equal(p, b) {
		t.Fatalf("ReadAt: n=%d err=%v", n, err)
	}
	w.Abort()
}

func TestTierStatsCountEachTier(t *testing.T) {
	s, _, slow := newTiers(t)
	put(t, s, "both", nil, body("b", 1000))
	put(t, slow, "disk", nil, body("d", 100<<10))
	ts := s.TierStats()
	if ts.Fast.Objects != 1 || ts.Slow.Objects != 2 || ts.Fast.Bytes < 1000 || ts.Slow.Bytes < 100<<10 {
		t.Fatalf("TierStats = %+v", ts)
	}
}

func TestFullQueueDropsPromotions(t *testing.T) {
	s, _, slow := newTiers(t)
	stopCopier(s) // nothing drains the queue
	const keys = promoteQueue + 10
	for i := range keys {
		k := fmt.Sprintf("k%d", i)
		put(t, slow, k, nil, body(k, 100))
		lookup(t, s, k)
		lookup(t, s, k)
	}
	if len(s.queue) != promoteQueue || s.dropped.Load() != keys-promoteQueue {
		t.Fatalf("queue holds %d, %d dropped; want %d and %d", len(s.queue), s.dropped.Load(), promoteQueue, keys-promoteQueue)
	}
}
