package evict

import "sync/atomic"

// entry is one resident key: 32 bytes in a slab chunk, linked into its
// queue by slab indices. Only key and hits are read outside Policy.mu (by
// lookups, which check key because a slot may be freed and reused under
// them); everything else is owned by Policy.mu.
type entry struct {
	key        atomic.Uint64
	weight     int64
	prev, next uint32 // slab indices; 0 is none
	hits       atomic.Int32
	inMain     bool
}

// chunkLen is the number of entries in a slab chunk (32 KiB).
const chunkLen = 1024

type chunk [chunkLen]entry

// slab holds the entries in chunks that never move, so a lock-free reader
// can hold a pointer into one while the slab grows. Index 0 is never handed
// out: it stands for "none" in queue links and index slots. A freed entry
// goes on a free list threaded through next. Allocation and freeing are
// under Policy.mu.
type slab struct {
	chunks atomic.Pointer[[]*chunk]
	_      [cacheLine - 8]byte // lookups read chunks; inserts write the rest
	used   uint32              // indices handed out so far, 0 included
	free   uint32              // head of the free list; 0 when empty
}

// cacheLine keeps what lookups read off the cache lines inserts write.
const cacheLine = 64

// at returns the entry at index i, which must have been handed out.
func (s *slab) at(i uint32) *entry {
	return &(*s.chunks.Load())[i/chunkLen][i%chunkLen]
}

// alloc returns the index of an unused entry, growing the slab if needed.
func (s *slab) alloc() uint32 {
	if i := s.free; i != 0 {
		s.free = s.at(i).next
		return i
	}
	if s.used == 0 {
		s.used = 1 // skip index 0
	}
	if s.used == ^uint32(0) {
		panic("evict: more than 2^32-2 resident keys")
	}
	var chunks []*chunk
	if p := s.chunks.Load(); p != nil {
		chunks = *p
	}
	if int(s.used)/chunkLen == len(chunks) {
		// Publish a new slice header. Readers still on the old one never
		// look past its length, so append may write the new chunk into
		// the same array.
		grown := append(chunks, new(chunk))
		s.chunks.Store(&grown)
	}
	s.used++
	return s.used - 1
}

// release puts entry i on the free list. Its key is left in place: a
// reader that still finds it in an old index table will then either see
// it or, once it is reused, see a different key and miss.
func (s *slab) release(i uint32) {
	s.at(i).next = s.free
	s.free = i
}
