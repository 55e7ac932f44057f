package sim

import (
	"container/list"
	"math"
	"math/rand/v2"

	"github.com/outpost-edge/outpost/evict/tracegen"
)

// Hill climber and segment constants, Caffeine's.
const (
	climbStep     = 0.0625 // first step, as a fraction of the capacity
	climbRestart  = 0.05   // a hit-ratio change this large restarts the steps
	climbDecay    = 0.98   // each later step shrinks by this factor
	maxWindow     = 0.8    // largest window, as a fraction of the capacity
	protectedPart = 0.8    // share of the main segment that is protected
)

// WTinyLFU is W-TinyLFU with an adaptive window, after Caffeine: new
// objects enter an LRU window; an object pushed out of the window enters
// the main segmented LRU only if a count-min sketch of recent accesses
// says it is requested more often than the object it would evict. A hill
// climber moves the window's share of the capacity between 0 and 80% to
// follow the hit ratio, so recency-heavy traffic gets a larger window.
type WTinyLFU struct {
	capacity, windowMax        int64
	window, probation, protect lruList
	items                      map[uint64]*list.Element
	sketch                     countMin
	rng                        *rand.Rand

	hits, misses int // in the current sample
	prevRate     float64
	step         float64
}

type segment uint8

const (
	inWindow segment = iota
	inProbation
	inProtected
)

type wItem struct {
	key  uint64
	size int64
	seg  segment
}

// lruList is an LRU list of *wItem with their total size; front = least
// recently used.
type lruList struct {
	l    list.List
	size int64
}

func (q *lruList) push(it *wItem) *list.Element {
	q.size += it.size
	return q.l.PushBack(it)
}

func (q *lruList) remove(e *list.Element) *wItem {
	it := q.l.Remove(e).(*wItem)
	q.size -= it.size
	return it
}

// NewWTinyLFU returns an empty W-TinyLFU cache of capacity bytes with a 1%
// window to start from.
func NewWTinyLFU(capacity int64) *WTinyLFU {
	return &WTinyLFU{
		capacity:  capacity,
		windowMax: capacity / 100,
		items:     make(map[uint64]*list.Element),
		sketch:    newCountMin(1024),
		rng:       rand.New(rand.NewPCG(1, 1)),
		step:      -climbStep * float64(capacity),
	}
}

func (c *WTinyLFU) Get(key uint64, size int64) bool {
	c.sketch.add(key, len(c.items))
	defer c.climb()
	if e, ok := c.items[key]; ok {
		c.hits++
		c.touch(e)
		return true
	}
	c.misses++
	if size > c.capacity {
		return false
	}
	c.items[key] = c.window.push(&wItem{key: key, size: size})
	c.evict()
	return false
}

func (c *WTinyLFU) touch(e *list.Element) {
	it := e.Value.(*wItem)
	switch it.seg {
	case inWindow:
		c.window.l.MoveToBack(e)
	case inProbation:
		c.probation.remove(e)
		it.seg = inProtected
		c.items[it.key] = c.protect.push(it)
		c.demote()
	case inProtected:
		c.protect.l.MoveToBack(e)
	}
}

// demote moves least recently used protected objects to probation while
// protected is over its share of main.
func (c *WTinyLFU) demote() {
	limit := int64(protectedPart * float64(c.capacity-c.windowMax))
	for c.protect.size > limit && c.protect.l.Len() > 0 {
		it := c.protect.remove(c.protect.l.Front())
		it.seg = inProbation
		c.items[it.key] = c.probation.push(it)
	}
}

func (c *WTinyLFU) used() int64 { return c.window.size + c.probation.size + c.protect.size }

// evict moves what overflows the window to main, each candidate against
// main's least recently used objects, and then evicts from main (or, when
// main is empty, the window) until everything fits.
func (c *WTinyLFU) evict() {
	for c.window.size > c.windowMax && c.window.l.Len() > 0 {
		cand := c.window.remove(c.window.l.Front())
		c.admit(cand)
	}
	for c.used() > c.capacity {
		c.drop(c.victim())
	}
}

// admit puts a window's candidate into probation if, victim by victim, it
// is requested more often than each object it pushes out.
func (c *WTinyLFU) admit(cand *wItem) {
	for c.used()+cand.size > c.capacity {
		v := c.victim()
		if v == nil || !c.wins(cand.key, v.Value.(*wItem).key) {
			delete(c.items, cand.key)
			return
		}
		c.drop(v)
	}
	cand.seg = inProbation
	c.items[cand.key] = c.probation.push(cand)
}

// wins is TinyLFU's admission test, with Caffeine's defence against hash
// flooding: a warm candidate sometimes wins at random.
func (c *WTinyLFU) wins(cand, victim uint64) bool {
	fc, fv := c.sketch.estimate(cand), c.sketch.estimate(victim)
	return fc > fv || fc >= 6 && c.rng.IntN(128) == 0
}

func (c *WTinyLFU) victim() *list.Element {
	for _, q := range []*lruList{&c.probation, &c.protect, &c.window} {
		if e := q.l.Front(); e != nil {
			return e
		}
	}
	return nil
}

func (c *WTinyLFU) drop(e *list.Element) {
	it := e.Value.(*wItem)
	switch it.seg {
	case inWindow:
		c.window.remove(e)
	case inProbation:
		c.probation.remove(e)
	case inProtected:
		c.protect.remove(e)
	}
	delete(c.items, it.key)
}

// climb adjusts the window once a sample of requests is complete: keep
// stepping the same way while the hit ratio improves, turn back when it
// falls, and take smaller steps as it settles.
func (c *WTinyLFU) climb() {
	n := c.hits + c.misses
	if n < 10*max(len(c.items), 100) {
		return
	}
	rate := float64(c.hits) / float64(n)
	change := rate - c.prevRate
	amount := c.step
	if change < 0 {
		amount = -c.step
	}
	if math.Abs(change) >= climbRestart {
		c.step = math.Copysign(climbStep*float64(c.capacity), amount)
	} else {
		c.step = climbDecay * amount
	}
	c.prevRate, c.hits, c.misses = rate, 0, 0
	c.windowMax = min(max(c.windowMax+int64(amount), 0), int64(maxWindow*float64(c.capacity)))
}

// countMin is a count-min sketch of 4-bit counters (held in bytes) with
// TinyLFU's aging: every counter halves after 10 additions per tracked
// object.
type countMin struct {
	rows  [4][]uint8
	mask  uint64
	added int
}

func newCountMin(width int) countMin {
	var s countMin
	for i := range s.rows {
		s.rows[i] = make([]uint8, width)
	}
	s.mask = uint64(width - 1)
	return s
}

// add counts key; objects is the number tracked, which sizes the sketch
// (it grows, from zero, when they outgrow it) and the aging period.
func (s *countMin) add(key uint64, objects int) {
	if objects*4 > len(s.rows[0]) {
		*s = newCountMin(1 << bitsFor(objects*8))
	}
	for i := range s.rows {
		if c := &s.rows[i][s.slot(key, i)]; *c < 15 {
			*c++
		}
	}
	if s.added++; s.added >= 10*max(objects, len(s.rows[0])/4) {
		for i := range s.rows {
			for j := range s.rows[i] {
				s.rows[i][j] >>= 1
			}
		}
		s.added /= 2
	}
}

func (s *countMin) estimate(key uint64) uint8 {
	est := uint8(15)
	for i := range s.rows {
		est = min(est, s.rows[i][s.slot(key, i)])
	}
	return est
}

// slot picks key's counter in row i (double hashing).
func (s *countMin) slot(key uint64, i int) uint64 {
	h := tracegen.Mix(key) // trace keys may be sequential
	lo, hi := h&0xffffffff, h>>32|1
	return (lo + uint64(i)*hi) & s.mask
}

func bitsFor(n int) int {
	b := 0
	for 1<<b < n {
		b++
	}
	return b
}
