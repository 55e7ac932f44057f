package purge

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// A burst of purges, many times maxMarks, keeps the marks within their
// bound, at a constant cost per mark, and a revalidation that began
// before the burst still cannot refresh an object the burst purged, even
// once that purge's mark has been dropped.
func TestPurgeMarksStayBoundedUnderABurst(t *testing.T) {
	s, p := newStore(t)
	put(t, s, "obj", "a", "old")
	gen := s.Generation() // a revalidation of obj is sent
	p.Keys([]string{"a"}, true)
	const n = 3 * maxMarks
	deadline := time.Now().Add(20 * time.Second)
	for i := range n {
		p.Keys([]string{fmt.Sprint("k", i)}, true)
		if i%1000 == 0 {
			if time.Now().After(deadline) {
				t.Fatalf("%d purges took over 20s: a mark costs more than O(1)", i)
			}
			if got := s.marks.len(); got > maxMarks {
				t.Fatalf("after %d purges %d marks are held, bound %d", i, got, maxMarks)
			}
		}
	}
	if got := len(s.marks.last); got > maxMarks {
		t.Fatalf("%d names marked, bound %d", got, maxMarks)
	}
	if _, ok := s.marks.last["tag:a"]; ok {
		t.Fatal("the first purge's mark was not dropped: the test proves nothing")
	}
	put(t, s.Store, "obj", "a", "old") // (the deleter removed it; the 304 is for this one)
	if err := s.UpdateMetaSince("obj", []byte("a fresh"), gen); !errors.Is(err, ErrPurged) {
		t.Errorf("a 304 sent before the purge of its key, applied after the burst: %v, want ErrPurged", err)
	}
	if err := s.UpdateMetaSince("obj", []byte("a fresh"), s.Generation()); err != nil {
		t.Errorf("a 304 sent after the burst: %v", err)
	}
	put(t, s, "new", "a", "new")
	if !stored(s, "new") {
		t.Error("a fill begun after the burst was not kept")
	}
}

func TestMarksOlderThanTheHorizonAreDroppedIntoTheFloor(t *testing.T) {
	m := newMarks()
	t0 := time.Unix(1000, 0)
	m.add("tag:a", 1, t0)
	m.add("tag:a", 2, t0.Add(time.Minute)) // marked again: the first entry is stale
	m.add("tag:b", 3, t0.Add(2*time.Minute))
	m.add("tag:c", 4, t0.Add(markHorizon+90*time.Second))
	if m.len() != 2 || m.floor != 2 {
		t.Fatalf("%d marks, floor %d; want 2 (b, c), floor 2 (a's last mark dropped)", m.len(), m.floor)
	}
	for _, tc := range []struct {
		name string
		gen  uint64
		want bool
	}{
		{"tag:a", 1, true},  // its mark was dropped: the floor answers
		{"tag:z", 1, true},  // never marked, but begun before the floor
		{"tag:z", 2, false}, // begun at the floor
		{"tag:b", 2, true},
		{"tag:c", 3, true},
		{"tag:c", 4, false},
	} {
		if got := m.since(tc.name, tc.gen); got != tc.want {
			t.Errorf("since(%s, %d) = %v, want %v", tc.name, tc.gen, got, tc.want)
		}
	}
	m.all(5)
	if m.len() != 0 || len(m.last) != 0 || !m.since("tag:x", 4) || m.since("tag:c", 5) {
		t.Errorf("after a purge-all: %d marks, floor %d", m.len(), m.floor)
	}
}
