package memory

import (
	"math/bits"
	"sync/atomic"
)

// index maps key hashes to committed objects. It is an open-addressing
// table with linear probing whose slots are atomic pointers, so Lookup reads
// it without a lock while the store changes it under Store.mu. It costs 8 to
// 32 bytes an object, where a sync.Map costs about 120 (an entry node, the
// boxed key and its share of the trie).
//
// A deleted object leaves a tombstone in its slot until the table is
// rebuilt. A rebuild copies the live objects into a new table and publishes
// it; readers still on the old table see the index as it was just before,
// as if they had read a moment earlier. Every table keeps at least a
// quarter of its slots empty, so a probe always ends.
type index struct {
	table atomic.Pointer[table]
	// live counts objects, used objects plus tombstones; under Store.mu.
	live, used int
}

type table struct {
	mask  uint64 // len(slots)-1; the length is a power of two
	slots []atomic.Pointer[object]
}

// tombstone marks a slot whose object was deleted: a probe goes on past it.
var tombstone = new(object)

// minSlots is the smallest table.
const minSlots = 64

// indexSlotBytes is the most a live object costs in the table: 8-byte
// slots, at least a quarter of them live (see put and remove).
const indexSlotBytes = 32

// get returns the object with the given hash, or nil. It takes no lock.
func (x *index) get(hash uint64) *object {
	t := x.table.Load()
	if t == nil {
		return nil
	}
	for i := hash & t.mask; ; i = (i + 1) & t.mask {
		o := t.slots[i].Load()
		if o == nil {
			return nil
		}
		if o.hash == hash && o != tombstone {
			return o
		}
	}
}

// put stores o, replacing and returning the object with the same hash (nil
// if none); under Store.mu.
func (x *index) put(o *object) *object {
	if t := x.table.Load(); t == nil || 4*(x.used+1) > 3*len(t.slots) {
		x.rebuild(x.live + 1)
	}
	t := x.table.Load()
	free := -1
	for i := o.hash & t.mask; ; i = (i + 1) & t.mask {
		p := t.slots[i].Load()
		switch {
		case p == nil:
			if free < 0 {
				free = int(i)
				x.used++
			}
			t.slots[free].Store(o)
			x.live++
			return nil
		case p == tombstone:
			if free < 0 {
				free = int(i)
			}
		case p.hash == o.hash:
			t.slots[i].Store(o)
			return p
		}
	}
}

// remove deletes and returns the object with the given hash (nil if none);
// under Store.mu. A table less than a quarter live is rebuilt smaller.
func (x *index) remove(hash uint64) *object {
	t := x.table.Load()
	if t == nil {
		return nil
	}
	for i := hash & t.mask; ; i = (i + 1) & t.mask {
		o := t.slots[i].Load()
		if o == nil {
			return nil
		}
		if o.hash == hash && o != tombstone {
			t.slots[i].Store(tombstone)
			x.live--
			if len(t.slots) > minSlots && 4*x.live < len(t.slots) {
				x.rebuild(x.live)
			}
			return o
		}
	}
}

// rebuild publishes a new table sized for n objects (load at most a half),
// holding the live objects of the current one; under Store.mu.
func (x *index) rebuild(n int) {
	size := max(minSlots, 1<<bits.Len(uint(max(2*n, 1)-1)))
	nt := &table{mask: uint64(size - 1), slots: make([]atomic.Pointer[object], size)}
	if t := x.table.Load(); t != nil {
		for i := range t.slots {
			if o := t.slots[i].Load(); o != nil && o != tombstone {
				j := o.hash & nt.mask
				for nt.slots[j].Load() != nil {
					j = (j + 1) & nt.mask
				}
				nt.slots[j].Store(o)
			}
		}
	}
	x.used = x.live
	x.table.Store(nt)
}

// each calls fn for each object of the current table until fn returns
// false. It takes no lock; fn may change the index.
func (x *index) each(fn func(*object) bool) {
	t := x.table.Load()
	if t == nil {
		return
	}
	for i := range t.slots {
		if o := t.slots[i].Load(); o != nil && o != tombstone && !fn(o) {
			return
		}
	}
}

// clear empties the index; under Store.mu.
func (x *index) clear() {
	x.table.Store(nil)
	x.live, x.used = 0, 0
}
