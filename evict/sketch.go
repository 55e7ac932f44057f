package evict

import "math/bits"

const (
	sketchRows    = 4
	rowWidth      = 4    // counters per key in each row
	maxCount      = 15   // counters saturate here, as TinyLFU's 4-bit ones do
	sampleFactor  = 10   // halve all counters after this many adds per resident key
	minSketchKeys = 1024 // smallest number of keys a sketch is sized for
)

// sketch is a count-min sketch of insert frequencies with TinyLFU's aging:
// after sampleFactor*keys additions every counter is halved, so old
// popularity fades. Owned by Policy.mu. It is sized for the number of
// resident keys, with rowWidth counters per key in each row (fewer let
// unrelated keys share counters enough to blur the comparison), and rebuilt
// larger (starting from zero) when they outgrow it.
type sketch struct {
	keys    int     // resident keys the sketch is sized for
	mask    uint64  // row width - 1
	rows    []uint8 // sketchRows rows of width counters
	added   int
	samples int
}

func newSketch(keys int) sketch {
	keys = max(keys, minSketchKeys)
	width := uint64(1) << bits.Len64(uint64(rowWidth*keys-1)) // next power of two
	return sketch{
		keys:    keys,
		mask:    width - 1,
		rows:    make([]uint8, sketchRows*width),
		samples: sampleFactor * keys,
	}
}

// add counts one insert of key and returns its new estimate. It raises only
// the counters at the current minimum (a conservative update), which keeps
// keys that share counters with popular ones from looking popular.
func (s *sketch) add(key uint64) uint8 {
	est := s.estimate(key)
	if est < maxCount {
		h := mix(key)
		for i := range uint64(sketchRows) {
			if c := &s.rows[s.slot(h, i)]; *c == est {
				*c++
			}
		}
		est++
	}
	if s.added++; s.added >= s.samples {
		s.age()
	}
	return est
}

// estimate returns how often key was inserted, as far as the sketch knows.
func (s *sketch) estimate(key uint64) uint8 {
	est := uint8(maxCount)
	h := mix(key)
	for i := range uint64(sketchRows) {
		est = min(est, s.rows[s.slot(h, i)])
	}
	return est
}

// slot picks the counter of key's mixed hash h in row i (double hashing).
func (s *sketch) slot(h, i uint64) uint64 {
	lo, hi := h&0xffffffff, h>>32|1
	return i*(s.mask+1) + (lo+i*hi)&s.mask
}

func (s *sketch) age() {
	for i := range s.rows {
		s.rows[i] >>= 1
	}
	s.added /= 2
}
