package tracegen

import (
	"slices"
	"testing"
)

func TestSameSeedSameTrace(t *testing.T) {
	a, b := Generate(Media(20_000, 3)), Generate(Media(20_000, 3))
	if !slices.Equal(a, b) {
		t.Fatal("two traces from the same config differ")
	}
	if c := Generate(Media(20_000, 4)); slices.Equal(a, c) {
		t.Fatal("traces from different seeds are equal")
	}
}

func TestTraceHasTheConfiguredShape(t *testing.T) {
	c := Downloads(100_000, 1)
	trace := Generate(c)
	count := map[uint64]int{}
	size := map[uint64]int64{}
	for _, r := range trace {
		if r.Size < c.Sizes.MinSize || r.Size > c.Sizes.MaxSize {
			t.Fatalf("size %d outside [%d, %d]", r.Size, c.Sizes.MinSize, c.Sizes.MaxSize)
		}
		if s, ok := size[r.Key]; ok && s != r.Size {
			t.Fatalf("object %x requested with sizes %d and %d", r.Key, s, r.Size)
		}
		size[r.Key] = r.Size
		count[r.Key]++
	}
	once := 0
	var counts []int
	for _, n := range count {
		if n == 1 {
			once++
		}
		counts = append(counts, n)
	}
	// One-hit wonders plus the catalogue's own rarely drawn objects.
	if f := float64(once) / float64(len(trace)); f < 0.9*c.OneHit || f > 2*c.OneHit {
		t.Errorf("%.3f of requests to objects requested once, want about %.2f", f, c.OneHit)
	}
	// Zipf(1) over 2,000 objects: the top 20 ranks take 44% of the
	// catalogue's requests; drift spreads that over more objects.
	slices.Sort(counts)
	top := 0
	for _, n := range counts[len(counts)-len(counts)/100:] {
		top += n
	}
	if f := float64(top) / float64(len(trace)); f < 0.25 {
		t.Errorf("the 1%% most requested objects have %.3f of requests: too little skew", f)
	}
	var big int
	for _, s := range size {
		if s >= int64(c.Sizes.TailMin) {
			big++
		}
	}
	if big == 0 || big > len(size)/20 {
		t.Errorf("%d of %d objects in the size tail, want about 1%%", big, len(size))
	}
}
