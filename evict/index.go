package evict

import (
	"math/bits"
	"sync/atomic"
)

// index maps a key to the slab index of its entry. It follows the memory
// store's index (storage/memory/index.go): open addressing with linear
// probing over atomic 8-byte slots, read without a lock while the policy
// changes it under Policy.mu, tombstones for deleted keys, rebuilt into a
// new table (published atomically) when too full or too empty. Two
// differences make it cheaper for millions of keys:
//
//   - A slot is a word, not a pointer: 32 bits of the key's hash (a
//     fingerprint, so most probes of other keys end without reading the
//     slab) and the entry's slab index. The tables hold no pointers for the
//     collector to scan, and a key costs 32 bytes of entry plus 10 to 32 of
//     slots.
//   - It is split into shards by the key's low bits, each its own table,
//     so a rebuild copies a 64th of the keys and briefly holds a 64th more
//     memory.
type index struct {
	counts [indexShards]struct{ live, used int } // under Policy.mu
	_      [cacheLine]byte
	tables [indexShards]atomic.Pointer[table] // read by lookups
	_      [cacheLine]byte
}

type table struct {
	shift uint // 64 - log2(len(slots)): a key's first slot is mix(key) >> shift
	slots []atomic.Uint64
}

const (
	indexShards   = 64
	minIndexSlots = 16
	// A slot is empty (0), a tombstone (low 32 bits 0, high not), or live
	// (fingerprint<<32 | slab index, the index not 0).
	tombstone = 1 << 32
)

func shardOf(key uint64) uint64 { return key % indexShards }

// mix spreads every bit of key into the high bits of its result (the
// first slot) and the low 32 bits into the low ones (the fingerprint), so
// keys that are not hashes (counters in tests) still spread.
func mix(key uint64) uint64 { return key * 0x9e3779b97f4a7c15 }

// start returns the first slot in t of a key whose mix is h.
func (t *table) start(h uint64) uint64 { return h >> t.shift }

func slotOf(h uint64, i uint32) uint64 { return h<<32 | uint64(i) }

// get returns key's entry and its slab index, or nil and 0. It takes no
// lock.
func (x *index) get(s *slab, key uint64) (*entry, uint32) {
	t := x.tables[shardOf(key)].Load()
	if t == nil {
		return nil, 0
	}
	mask := uint64(len(t.slots) - 1)
	h := mix(key)
	for i := t.start(h); ; i = (i + 1) & mask {
		v := t.slots[i].Load()
		if v == 0 {
			return nil, 0
		}
		if uint32(v>>32) == uint32(h) && uint32(v) != 0 {
			if e := s.at(uint32(v)); e.key.Load() == key {
				return e, uint32(v)
			}
		}
	}
}

// put adds key, which must not be in the index, at slab index e; under
// Policy.mu.
func (x *index) put(s *slab, key uint64, e uint32) {
	n := shardOf(key)
	c := &x.counts[n]
	if t := x.tables[n].Load(); t == nil || 4*(c.used+1) > 3*len(t.slots) {
		x.rebuild(s, n, c.live+1)
	}
	t := x.tables[n].Load()
	mask := uint64(len(t.slots) - 1)
	h := mix(key)
	i := t.start(h)
	for v := t.slots[i].Load(); v != 0 && v != tombstone; v = t.slots[i].Load() {
		i = (i + 1) & mask
	}
	if t.slots[i].Load() == 0 {
		c.used++
	}
	t.slots[i].Store(slotOf(h, e))
	c.live++
}

// remove deletes key, which must be in the index at slab index e; under
// Policy.mu. A shard less than a quarter live is rebuilt smaller.
func (x *index) remove(s *slab, key uint64, e uint32) {
	n := shardOf(key)
	t := x.tables[n].Load()
	mask := uint64(len(t.slots) - 1)
	h := mix(key)
	want := slotOf(h, e)
	i := t.start(h)
	for t.slots[i].Load() != want {
		i = (i + 1) & mask
	}
	t.slots[i].Store(tombstone)
	c := &x.counts[n]
	c.live--
	if len(t.slots) > minIndexSlots && 4*c.live < len(t.slots) {
		x.rebuild(s, n, c.live)
	}
}

// rebuild publishes a new table for shard n sized for keys keys (load at
// most a half), holding the live slots of the current one; under
// Policy.mu. Readers still on the old table see the shard as it was.
func (x *index) rebuild(s *slab, n uint64, keys int) {
	size := max(minIndexSlots, 1<<bits.Len(uint(max(2*keys, 1)-1)))
	nt := &table{shift: uint(64 - bits.TrailingZeros(uint(size))), slots: make([]atomic.Uint64, size)}
	mask := uint64(size - 1)
	if t := x.tables[n].Load(); t != nil {
		for i := range t.slots {
			if v := t.slots[i].Load(); uint32(v) != 0 {
				j := nt.start(mix(s.at(uint32(v)).key.Load()))
				for nt.slots[j].Load() != 0 {
					j = (j + 1) & mask
				}
				nt.slots[j].Store(v)
			}
		}
	}
	x.counts[n].used = x.counts[n].live
	x.tables[n].Store(nt)
}
