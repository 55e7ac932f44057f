// Package memory is an in-memory storage.Store bounded in bytes. Objects are
// kept whole in memory and evicted by the evict package's policy
// (S3-FIFO); it knows nothing of HTTP.
//
// A hit costs two lock-free lookups (the index and the policy's) and at
// most one atomic hit count. Lookup returns the committed object itself,
// which is immutable: it allocates nothing, Close has nothing to release,
// and the body can be written to a socket without a copy (storage.Bytes).
// An object deleted, replaced or evicted while a reader holds it stays
// readable because the reader still references it; its bytes leave the
// budget at once and the memory when the last reader drops it.
//
// The bound is on the heap the committed objects really take: each counts
// its two allocations, one for its key and metadata and one for its body,
// as the allocator rounds them, plus ObjectOverhead for its descriptor, its
// index slot and its share of the eviction policy. (One allocation for all
// three would save about 16 bytes on a small object but cost a size class
// on bodies of a power of two, such as 4 KiB.) A fill in progress holds up
// to MaxObjectSize bytes outside the bound until it commits or aborts.
package memory

import (
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sync"
	"unsafe"

	"github.com/outpost-edge/outpost/evict"
	"github.com/outpost-edge/outpost/storage"
)

// ObjectOverhead is the fixed weight, in bytes, charged per object on top of
// the allocations of its key, metadata and body: its descriptor (64 bytes),
// its index slot (at most 32) and what the eviction policy keeps for it
// (its entry and map node, its share of the ghost queue and of the
// frequency sketch: about 320 bytes, measured). TestChargeCoversHeap keeps
// it at or above the heap really used.
const ObjectOverhead = 448

const defaultCapacity = 256 << 20

// Options configures a Store. The zero value works.
type Options struct {
	// Capacity bounds the heap the committed objects take: their key,
	// metadata and body as the allocator rounds them, plus ObjectOverhead
	// each. Zero means 256 MiB.
	Capacity int64
	// MaxObjectSize is the largest body accepted, in bytes; a longer one
	// fails with storage.ErrTooLarge. Zero means Capacity/8; more than
	// Capacity means Capacity.
	MaxObjectSize int64
}

// Store is an in-memory storage.Store. It is safe for concurrent use.
type Store struct {
	capacity  int64
	maxObject int64
	seed      maphash.Seed
	policy    *evict.Policy
	evicted   func(hash uint64) // s.evict, bound once so Insert does not allocate

	// mu serialises changes: commits, deletes, meta updates and the
	// evictions they cause (lock order: mu, then the policy's lock).
	// Lookup and Range take no lock.
	mu        sync.Mutex
	objects   int64
	bytes     int64 // bodies plus metadata, as storage.Stats counts them
	evictions int64
	// index maps a key's hash to its committed object; written under mu,
	// read lock-free.
	index index
}

var _ storage.Store = (*Store)(nil)

// New returns an empty store.
func New(opts Options) *Store {
	capacity := opts.Capacity
	if capacity <= 0 {
		capacity = defaultCapacity
	}
	maxObject := opts.MaxObjectSize
	if maxObject <= 0 {
		maxObject = capacity / 8
	}
	maxObject = min(maxObject, capacity)
	s := &Store{
		capacity:  capacity,
		maxObject: maxObject,
		seed:      maphash.MakeSeed(),
		policy:    evict.New(capacity),
	}
	s.evicted = s.evict
	return s
}

// object is a committed object. It never changes once committed (UpdateMeta
// commits a copy), so readers need no lock and Close releases nothing.
type object struct {
	hash   uint64
	head   []byte // the key, then the metadata
	body   []byte // its capacity is what the allocator gave
	keyLen int
}

var (
	_ storage.Object = (*object)(nil)
	_ storage.Bytes  = (*object)(nil)
)

func (o *object) ReadAt(p []byte, off int64) (int, error) { return readAt(o.body, p, off) }
func (o *object) Meta() []byte                            { return o.head[o.keyLen:] }
func (o *object) Size() int64                             { return int64(len(o.body)) }
func (o *object) Bytes() []byte                           { return o.body[:len(o.body):len(o.body)] }
func (o *object) Close() error                            { return nil }

// key views the key in the head without copying; the head never changes.
func (o *object) key() string { return unsafe.String(unsafe.SliceData(o.head), o.keyLen) }

// weight is what o counts against the capacity: its allocations as the
// allocator rounded them, and ObjectOverhead.
func (o *object) weight() int64 { return int64(cap(o.head)+cap(o.body)) + ObjectOverhead }

// size is what storage.Stats counts: metadata plus body.
func (o *object) size() int64 { return int64(len(o.head) - o.keyLen + len(o.body)) }

// newHead allocates key then meta in one slice, whose capacity is what the
// allocator gave.
func newHead(key string, meta []byte) []byte {
	b := slices.Grow([]byte(nil), len(key)+len(meta))
	return append(append(b, key...), meta...)
}

// readAt implements io.ReaderAt over a byte slice.
func readAt(b, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("memory: read at negative offset %d", off)
	}
	if off >= int64(len(b)) {
		return 0, io.EOF
	}
	n := copy(p, b[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) }

// get returns the committed object under key, or nil.
func (s *Store) get(key string, hash uint64) *object {
	o := s.index.get(hash)
	if o == nil || o.key() != key { // a 64-bit hash collision is a miss
		return nil
	}
	return o
}

// Lookup returns the object under key. It does not allocate.
func (s *Store) Lookup(key string) (storage.Object, error) {
	h := s.hash(key)
	o := s.get(key, h)
	if o == nil {
		return nil, storage.ErrNotFound
	}
	s.policy.Touch(h)
	return o, nil
}

// Contains reports whether key is stored, without counting it as a use
// (storage.Container).
func (s *Store) Contains(key string) bool { return s.get(key, s.hash(key)) != nil }

// Create starts an object under key. A sizeHint above the maximum object
// size fails at once with storage.ErrTooLarge. The writer's Commit returns
// nil when the admission policy declines the object: the fill succeeded,
// the object is just not kept, and neither is the one it replaces.
func (s *Store) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	if sizeHint > s.maxObject {
		return nil, fmt.Errorf("memory: create %q of %d bytes (max %d): %w", key, sizeHint, s.maxObject, storage.ErrTooLarge)
	}
	w := &writer{store: s, key: key, head: newHead(key, meta)}
	if sizeHint > 0 {
		w.buf = slices.Grow([]byte(nil), int(sizeHint))
	}
	return w, nil
}

// commit makes o visible under its key, replacing any previous object. The
// policy may refuse it (it is then dropped, with the object it replaces).
func (s *Store) commit(o *object) error {
	weight := o.weight()
	if weight > s.capacity {
		return fmt.Errorf("memory: commit %q of %d bytes (capacity %d): %w", o.key(), weight, s.capacity, storage.ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev *object
	if s.policy.Insert(o.hash, weight, s.evicted) {
		prev = s.index.put(o)
		s.account(o, 1)
	} else {
		prev = s.index.remove(o.hash)
	}
	if prev != nil {
		s.account(prev, -1)
	}
	return nil
}

// account adds (sign 1) or removes (sign -1) o from the counters; under mu.
func (s *Store) account(o *object, sign int64) {
	s.objects += sign
	s.bytes += sign * o.size()
}

// evict drops the object the policy evicted; called under mu.
func (s *Store) evict(hash uint64) {
	if o := s.index.remove(hash); o != nil {
		s.account(o, -1)
		s.evictions++
	}
}

// UpdateMeta replaces the metadata of the object under key. Readers that
// already hold the object keep seeing the old metadata. Metadata that would
// make the object larger than the capacity drops it.
func (s *Store) UpdateMeta(key string, meta []byte) error {
	h := s.hash(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.get(key, h)
	if old == nil {
		return fmt.Errorf("memory: update meta of %q: %w", key, storage.ErrNotFound)
	}
	o := &object{hash: h, head: newHead(key, meta), body: old.body, keyLen: old.keyLen}
	weight := o.weight()
	if weight > s.capacity {
		s.remove(old)
		return fmt.Errorf("memory: update meta of %q: %w", key, storage.ErrTooLarge)
	}
	// A resident key that fits is always readmitted; this may evict others.
	s.policy.Insert(h, weight, s.evicted)
	s.index.put(o)
	s.account(old, -1)
	s.account(o, 1)
	return nil
}

// Delete removes the object under key.
func (s *Store) Delete(key string) bool {
	h := s.hash(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.get(key, h)
	if o != nil {
		s.remove(o)
	}
	return o != nil
}

// remove drops a committed object from the index and the policy; under mu.
func (s *Store) remove(o *object) {
	s.index.remove(o.hash)
	s.policy.Remove(o.hash)
	s.account(o, -1)
}

// Range calls fn for each committed object without holding a lock, so fn
// may call back into the store (purge-all deletes from it). An object
// committed or deleted during Range may or may not be visited.
func (s *Store) Range(fn func(key string, meta []byte) bool) {
	s.index.each(func(o *object) bool { return fn(o.key(), o.Meta()) })
}

// Stats reports occupancy and evictions.
func (s *Store) Stats() storage.Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return storage.Stats{Objects: s.objects, Bytes: s.bytes, Capacity: s.capacity, Evictions: s.evictions}
}

// Close drops every object; readers still holding one keep it. The store
// stays usable.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.index.each(func(o *object) bool {
		s.policy.Remove(o.hash)
		s.account(o, -1)
		return true
	})
	s.index.clear()
	return nil
}
