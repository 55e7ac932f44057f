package evict

import "math/bits"

// ghost remembers recently evicted keys, without their data, up to a total
// weight equal to the main FIFO's share of the capacity. Owned by
// Policy.mu.
//
// It is a FIFO of (key, weight) slots numbered by a sequence number, in
// blocks that are recycled as the FIFO moves, and a set mapping each
// remembered key to the number of its slot. A key removed from the ghost
// (it came back) leaves its slot, and its weight, in the FIFO until the
// slot falls off; a slot whose key the set maps elsewhere, or not at all,
// is stale. A key costs 12 bytes of slot and 7 to 10 of set (up to 40
// for a while after the ghost has shrunk to an eighth of its keys).
type ghost struct {
	limit  int64
	weight int64
	// blocks[0] holds slots base to base+ghostBlockLen-1; the live slots are
	// head to tail-1.
	blocks           []*ghostBlock
	spare            *ghostBlock
	base, head, tail uint64
	// heavy holds the weights that do not fit a slot's 32 bits, by slot.
	heavy map[uint64]int64
	set   ghostSet
}

// ghostBlock is 12 KiB of slots.
const ghostBlockLen = 1024

type ghostBlock struct {
	keys    [ghostBlockLen]uint64
	weights [ghostBlockLen]uint32 // ^0: the weight is in ghost.heavy
}

func (g *ghost) block(seq uint64) (*ghostBlock, uint64) {
	return g.blocks[(seq-g.base)/ghostBlockLen], seq % ghostBlockLen
}

func (g *ghost) keyAt(seq uint64) uint64 {
	b, i := g.block(seq)
	return b.keys[i]
}

// add remembers key, which must not be remembered, forgetting the oldest
// keys to stay within the limit (a key heavier than the limit is kept
// alone).
func (g *ghost) add(key uint64, weight int64) {
	for g.head < g.tail && g.weight+weight > g.limit {
		g.pop()
	}
	if g.tail-g.base == uint64(len(g.blocks))*ghostBlockLen {
		b := g.spare
		if b == nil {
			b = new(ghostBlock)
		}
		g.spare = nil
		g.blocks = append(g.blocks, b)
	}
	seq := g.tail
	b, i := g.block(seq)
	b.keys[i] = key
	if weight < 1<<32-1 {
		b.weights[i] = uint32(weight)
	} else {
		b.weights[i] = 1<<32 - 1
		if g.heavy == nil {
			g.heavy = make(map[uint64]int64)
		}
		g.heavy[seq] = weight
	}
	g.tail++
	g.weight += weight
	g.set.put(g, key, seq)
}

// remove reports whether key was remembered, and forgets it.
func (g *ghost) remove(key uint64) bool {
	i, ok := g.set.find(g, key)
	if ok {
		g.set.delete(g, i)
	}
	return ok
}

// pop drops the oldest slot, and forgets its key unless the slot is stale.
func (g *ghost) pop() {
	seq := g.head
	b, i := g.block(seq)
	w := int64(b.weights[i])
	if w == 1<<32-1 {
		w = g.heavy[seq]
		delete(g.heavy, seq)
	}
	g.weight -= w
	if j, ok := g.set.find(g, b.keys[i]); ok && g.set.seq(g, j) == seq {
		g.set.delete(g, j)
	}
	g.head++
	if g.head%ghostBlockLen == 0 {
		g.spare = g.blocks[0]
		g.blocks[0] = nil
		g.blocks = g.blocks[1:]
		g.base += ghostBlockLen
	}
}

// ghostSet maps a remembered key to its slot's sequence number: open
// addressing with linear probing, a control byte per slot (empty, deleted,
// or 7 bits of the key, so that most probes end without reading the FIFO)
// and the low 32 bits of the sequence number (the live slots span less
// than 2^32 numbers). Its size is not a power of two, so that it can stay
// between a half and three quarters full.
type ghostSet struct {
	ctrl []uint8
	seqs []uint32
	live int
	used int // live plus deleted
}

const (
	setEmpty   = 0
	setDeleted = 1
	setLive    = 0x80 // | 7 bits of the key
	minSetLen  = 64
)

// home returns the first slot of a key whose mix is h.
func (s *ghostSet) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(s.ctrl)))
	return int(hi)
}

func ctrlOf(h uint64) uint8 { return setLive | uint8(h)&0x7f }

// seq returns the full sequence number in slot i.
func (s *ghostSet) seq(g *ghost, i int) uint64 {
	return g.head + uint64(s.seqs[i]-uint32(g.head))
}

// find returns key's slot.
func (s *ghostSet) find(g *ghost, key uint64) (int, bool) {
	if s.live == 0 {
		return 0, false
	}
	h := mix(key)
	c := ctrlOf(h)
	for i := s.home(h); ; {
		switch s.ctrl[i] {
		case setEmpty:
			return 0, false
		case c:
			if g.keyAt(s.seq(g, i)) == key {
				return i, true
			}
		}
		if i++; i == len(s.ctrl) {
			i = 0
		}
	}
}

// put adds key, which must not be in the set, with slot seq.
func (s *ghostSet) put(g *ghost, key, seq uint64) {
	if 4*(s.used+1) > 3*len(s.ctrl) {
		s.rebuild(g, s.live+1)
	}
	h := mix(key)
	i := s.home(h)
	for s.ctrl[i] >= setLive {
		if i++; i == len(s.ctrl) {
			i = 0
		}
	}
	if s.ctrl[i] == setEmpty {
		s.used++
	}
	s.ctrl[i], s.seqs[i] = ctrlOf(h), uint32(seq)
	s.live++
}

func (s *ghostSet) delete(g *ghost, i int) {
	s.ctrl[i] = setDeleted
	s.live--
	if len(s.ctrl) > minSetLen && 8*s.live < len(s.ctrl) {
		s.rebuild(g, s.live)
	}
}

// rebuild makes the set half full for n keys, dropping deleted slots.
func (s *ghostSet) rebuild(g *ghost, n int) {
	old := *s
	*s = ghostSet{ctrl: make([]uint8, max(minSetLen, 2*n)), seqs: make([]uint32, max(minSetLen, 2*n))}
	for i, c := range old.ctrl {
		if c >= setLive {
			seq := old.seq(g, i)
			s.put(g, g.keyAt(seq), seq)
		}
	}
}
