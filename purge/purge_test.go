package purge

import (
	"bytes"
	"errors"
	"fmt"
	"iter"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/memory"
)

// spaceTags reads metadata that is just the surrogate keys, space-separated.
func spaceTags(meta []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		for _, t := range bytes.Fields(meta) {
			if !yield(t) {
				return
			}
		}
	}
}

// deleter is a Cache that purges by deleting (soft purges too).
type deleter struct{ s *Store }

func (d deleter) Purge(key string, _ bool) bool { return d.s.Delete(key) }

func (d deleter) PurgeAll(bool) int {
	var keys []string
	d.s.Range(func(k string, _ []byte) bool { keys = append(keys, k); return true })
	n := 0
	for _, k := range keys {
		if d.s.Delete(k) {
			n++
		}
	}
	return n
}

func newStore(t testing.TB) (*Store, *Purger) {
	s := Wrap(memory.New(memory.Options{Capacity: 64 << 20}), spaceTags)
	return s, New(s, deleter{s})
}

// put stores body under key with the given tags.
func put(t testing.TB, s storage.Store, key, tags, body string) {
	t.Helper()
	w, err := s.Create(key, []byte(tags), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func sorted(keys []string) []string { slices.Sort(keys); return keys }

func stored(s storage.Store, key string) bool {
	obj, err := s.Lookup(key)
	if err == nil {
		obj.Close()
	}
	return err == nil
}

func TestIndexFollowsCommitsMetaUpdatesAndDeletes(t *testing.T) {
	s, _ := newStore(t)
	put(t, s, "k1", "a b", "one")
	put(t, s, "k2", "b", "two")
	if got := sorted(s.Keys("b")); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("Keys(b) = %v", got)
	}
	if err := s.UpdateMeta("k1", []byte("c")); err != nil {
		t.Fatal(err)
	}
	if got := s.Keys("a"); len(got) != 0 {
		t.Errorf("after a meta update without a: Keys(a) = %v", got)
	}
	if got := s.Keys("c"); !slices.Equal(got, []string{"k1"}) {
		t.Errorf("Keys(c) = %v", got)
	}
	put(t, s, "k2", "d", "two again") // a replacement drops the old keys
	if got := s.Keys("b"); len(got) != 0 {
		t.Errorf("after k2 was replaced: Keys(b) = %v", got)
	}
	s.Delete("k1")
	if got, n := s.Keys("c"), s.Tags(); len(got) != 0 || n != 1 {
		t.Errorf("after a delete: Keys(c) = %v, %d tags indexed, want only d", got, n)
	}
}

func TestWrapRebuildsTheIndexFromTheStore(t *testing.T) {
	mem := memory.New(memory.Options{Capacity: 1 << 20})
	put(t, mem, "k1", "a", "one")
	put(t, mem, "k2", "a b", "two")
	put(t, mem, "k3", "", "three")
	s := Wrap(mem, spaceTags)
	if got := sorted(s.Keys("a")); !slices.Equal(got, []string{"k1", "k2"}) {
		t.Errorf("Keys(a) after Wrap = %v", got)
	}
	if n := New(s, deleter{s}).Keys([]string{"a", "b"}, false); n != 2 || stored(s, "k1") || !stored(s, "k3") {
		t.Errorf("purge of a, b: %d objects, k1 stored %v, k3 stored %v", n, stored(s, "k1"), stored(s, "k3"))
	}
}

func TestFillBegunBeforeAPurgeIsNotKept(t *testing.T) {
	cases := []struct {
		name  string
		tags  string
		purge func(p *Purger, s *Store)
		kept  bool
	}{
		{"purge of its key", "a b", func(p *Purger, _ *Store) { p.Keys([]string{"b"}, false) }, false},
		{"soft purge of its key", "a", func(p *Purger, _ *Store) { p.Keys([]string{"a"}, true) }, false},
		{"purge of another key", "a", func(p *Purger, _ *Store) { p.Keys([]string{"z"}, false) }, true},
		{"purge all", "", func(p *Purger, _ *Store) { p.All(true) }, false},
		{"URL purge of its storage key", "", func(p *Purger, s *Store) { p.URL(func() bool { return s.Delete("obj") }) }, false},
		{"URL purge of another storage key", "a", func(p *Purger, s *Store) { p.URL(func() bool { return s.Delete("other") }) }, true},
		{"delete outside a purge", "a", func(_ *Purger, s *Store) { s.Delete("obj") }, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, p := newStore(t)
			w, err := s.Create("obj", []byte(tc.tags), 4)
			if err != nil {
				t.Fatal(err)
			}
			w.Write([]byte("old!"))
			tc.purge(p, s)
			if err := w.Commit(); err != nil {
				t.Fatalf("Commit: %v; a refused fill still ends cleanly for its readers", err)
			}
			buf := make([]byte, 4)
			if n, err := w.ReadAt(buf, 0); n != 4 || string(buf) != "old!" {
				t.Errorf("readers following the writer got %q, %v", buf[:n], err)
			}
			if got := stored(s, "obj"); got != tc.kept {
				t.Errorf("stored after the commit: %v, want %v", got, tc.kept)
			}
			if refused := s.Refused.Load() == 1; refused == tc.kept {
				t.Errorf("Refused = %d", s.Refused.Load())
			}
		})
	}
}

func TestFillCreatedAfterAPurgeIsKept(t *testing.T) {
	s, p := newStore(t)
	p.Keys([]string{"a"}, false)
	p.All(false)
	put(t, s, "obj", "a", "new")
	if !stored(s, "obj") || !slices.Equal(s.Keys("a"), []string{"obj"}) {
		t.Fatal("a fill begun after the purge was not kept")
	}
}

// A purge and a commit racing: whichever wins, the object begun before
// the purge must not be stored once both are done.
func TestPurgeRacingCommitsNeverLeavesTheOldObject(t *testing.T) {
	s, p := newStore(t)
	for round := range 2000 {
		w, err := s.Create("obj", []byte("t"), 1)
		if err != nil {
			t.Fatal(err)
		}
		w.Write([]byte("x"))
		var wg sync.WaitGroup
		wg.Add(2)
		go func() { defer wg.Done(); w.Commit() }()
		go func() {
			defer wg.Done()
			switch round % 3 {
			case 0:
				p.Keys([]string{"t"}, false)
			case 1:
				p.URL(func() bool { return s.Delete("obj") })
			default:
				p.All(false)
			}
		}()
		wg.Wait()
		if stored(s, "obj") {
			t.Fatalf("round %d: the object filled before the purge is stored", round)
		}
	}
}

func TestPurgerCountsByKind(t *testing.T) {
	s, p := newStore(t)
	put(t, s, "k1", "a", "1")
	put(t, s, "k2", "a", "2")
	p.Keys([]string{"a", "nothing"}, false)
	p.URL(func() bool { return false })
	p.All(false)
	if got := [3]int64{p.Counts[ByURL].Load(), p.Counts[ByKey].Load(), p.Counts[All].Load()}; got != [3]int64{1, 1, 1} {
		t.Errorf("counts by kind (url, key, all) = %v", got)
	}
	if p.Objects.Load() != 2 {
		t.Errorf("objects = %d, want 2", p.Objects.Load())
	}
	if ByKey.String() != "key" || All.String() != "all" || ByURL.String() != "url" {
		t.Error("kind names")
	}
}

func TestIndexForgetsEvictedObjects(t *testing.T) {
	s := Wrap(memory.New(memory.Options{Capacity: 256 << 10}), spaceTags)
	const n = 10 * pruneEvery
	for i := range n {
		put(t, s, fmt.Sprintf("k%d", i), fmt.Sprintf("all k%d", i), "body")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		indexed, objects := len(s.Keys("all")), s.Stats().Objects
		if int64(indexed) <= 2*objects+pruneSlack+pruneEvery {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the index holds %d keys for %d stored objects", indexed, objects)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if s.Stats().Evictions == 0 {
		t.Fatal("nothing was evicted: the test proves nothing")
	}
	// Every stored object is still indexed: a purge finds them all.
	New(s, deleter{s}).Keys([]string{"all"}, false)
	if left := s.Stats().Objects; left != 0 {
		t.Errorf("a purge of the key common to all left %d objects", left)
	}
}

func TestRevalidationBegunBeforeAPurgeLeavesTheObjectPurged(t *testing.T) {
	cases := []struct {
		name  string
		purge func(p *Purger)
		err   error
	}{
		{"purge of its key", func(p *Purger) { p.Keys([]string{"a"}, true) }, ErrPurged},
		{"purge all", func(p *Purger) { p.All(true) }, ErrPurged},
		{"purge of another key", func(p *Purger) { p.Keys([]string{"z"}, true) }, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, p := newStore(t)
			gen := s.Generation() // the revalidation is sent
			tc.purge(p)
			put(t, s.Store, "obj", "a", "old") // (the deleter removed it; the 304 is for this one)
			if err := s.UpdateMetaSince("obj", []byte("a fresh"), gen); !errors.Is(err, tc.err) {
				t.Fatalf("UpdateMetaSince: %v, want %v", err, tc.err)
			}
			obj, err := s.Lookup("obj")
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			if updated := string(obj.Meta()) == "a fresh"; updated != (tc.err == nil) {
				t.Errorf("meta %q after the 304", obj.Meta())
			}
		})
	}
	s, p := newStore(t)
	p.Keys([]string{"a"}, true)
	put(t, s, "obj", "a", "new")
	if err := s.UpdateMetaSince("obj", []byte("a"), s.Generation()); err != nil {
		t.Errorf("a revalidation begun after the purge: %v", err)
	}
}

func TestFillRequestedBeforeAPurgeIsNotKeptEvenIfCreatedAfter(t *testing.T) {
	s, p := newStore(t)
	gen := s.Generation() // the request leaves for the origin
	p.Keys([]string{"a"}, false)
	w, err := s.CreateSince("obj", []byte("a"), 3, gen) // its response arrives
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("old"))
	w.Commit()
	if stored(s, "obj") {
		t.Error("the response to a request sent before the purge was stored")
	}
}
