package evict

import "testing"

func TestSketchCountsInserts(t *testing.T) {
	s := newSketch(minSketchKeys)
	for i := range uint8(20) {
		if got, want := s.add(42), min(i+1, maxCount); got != want {
			t.Fatalf("add #%d returned %d, want %d", i+1, got, want)
		}
	}
	if got := s.estimate(7); got != 0 {
		t.Fatalf("estimate of a key never added = %d", got)
	}
}

func TestSketchAgesCounts(t *testing.T) {
	s := newSketch(minSketchKeys)
	for range 8 {
		s.add(42)
	}
	// Fill the rest of the sample with distinct keys: the counts halve.
	for k := uint64(8); k < uint64(s.samples); k++ {
		s.add(k << 20)
	}
	if s.added != s.samples/2 {
		t.Fatalf("added = %d after aging, want %d", s.added, s.samples/2)
	}
	if got := s.estimate(42); got != 4 {
		t.Fatalf("estimate after aging = %d, want 4", got)
	}
}

func TestSketchRarelyOverestimatesColdKeys(t *testing.T) {
	s := newSketch(minSketchKeys)
	for k := range uint64(minSketchKeys) {
		s.add(k)
	}
	over := 0
	for k := uint64(1 << 40); k < 1<<40+1000; k++ {
		if s.estimate(k) > 0 {
			over++
		}
	}
	if over > 50 {
		t.Fatalf("%d of 1000 unseen keys estimated above 0", over)
	}
}
