// Package memory is an in-memory storage.Store bounded in bytes. Objects are
// kept whole in memory and evicted by the evict package's policy (S3-FIFO
// with TinyLFU admission); it knows nothing of HTTP.
//
// A hit costs two lock-free map lookups (the index and the policy's) and at
// most one atomic hit count. Lookup returns the committed object itself,
// which is immutable: it allocates nothing, Close has nothing to release,
// and the body can be written to a socket without a copy (storage.Bytes).
// An object deleted, replaced or evicted while a reader holds it stays
// readable because the reader still references it; its bytes leave the
// budget at once and the memory when the last reader drops it.
//
// The bound covers committed objects. A fill in progress holds up to
// MaxObjectSize bytes outside it until it commits or aborts.
package memory

import (
	"fmt"
	"hash/maphash"
	"io"
	"sync"

	"github.com/outpost-edge/outpost/evict"
	"github.com/outpost-edge/outpost/storage"
)

// ObjectOverhead is the fixed weight, in bytes, charged per object on top of
// its key, metadata and body: roughly the object, index and policy entries.
const ObjectOverhead = 256

const defaultCapacity = 256 << 20

// Options configures a Store. The zero value works.
type Options struct {
	// Capacity bounds the bytes held: bodies, metadata, keys and
	// ObjectOverhead per object. Zero means 256 MiB.
	Capacity int64
	// MaxObjectSize is the largest body accepted, in bytes; a longer one
	// fails with storage.ErrTooLarge. Zero means Capacity/8.
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
	// index maps a key's hash (uint64) to its committed *object; written
	// under mu, read lock-free.
	index sync.Map
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
	key  string
	hash uint64
	meta []byte
	body []byte
}

var (
	_ storage.Object = (*object)(nil)
	_ storage.Bytes  = (*object)(nil)
)

func (o *object) ReadAt(p []byte, off int64) (int, error) { return readAt(o.body, p, off) }
func (o *object) Meta() []byte                            { return o.meta }
func (o *object) Size() int64                             { return int64(len(o.body)) }
func (o *object) Bytes() []byte                           { return o.body }
func (o *object) Close() error                            { return nil }

// weight is what the object counts against the capacity.
func (o *object) weight() int64 {
	return int64(len(o.key)+len(o.meta)+len(o.body)) + ObjectOverhead
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
	v, _ := s.index.Load(hash)
	o, _ := v.(*object)
	if o == nil || o.key != key { // a 64-bit hash collision is a miss
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
// nil when the admission policy declines the object (it is rarer than what
// it would displace): the fill succeeded, the object is just not kept, and
// neither is the one it replaces.
func (s *Store) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	if sizeHint > s.maxObject {
		return nil, fmt.Errorf("memory: create %q of %d bytes (max %d): %w", key, sizeHint, s.maxObject, storage.ErrTooLarge)
	}
	w := &writer{
		store: s,
		key:   key,
		meta:  append([]byte(nil), meta...),
	}
	if sizeHint > 0 {
		w.buf = make([]byte, 0, sizeHint)
	}
	return w, nil
}

// commit makes o visible under its key, replacing any previous object. The
// policy may refuse it (it is then dropped, with the object it replaces).
func (s *Store) commit(o *object) error {
	if o.weight() > s.capacity {
		return fmt.Errorf("memory: commit %q of %d bytes (capacity %d): %w", o.key, o.weight(), s.capacity, storage.ErrTooLarge)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var prev any
	if s.policy.Insert(o.hash, o.weight(), s.evicted) {
		prev, _ = s.index.Swap(o.hash, o)
		s.account(o, 1)
	} else {
		prev, _ = s.index.LoadAndDelete(o.hash)
	}
	if old, _ := prev.(*object); old != nil {
		s.account(old, -1)
	}
	return nil
}

// account adds (sign 1) or removes (sign -1) o from the counters; under mu.
func (s *Store) account(o *object, sign int64) {
	s.objects += sign
	s.bytes += sign * int64(len(o.meta)+len(o.body))
}

// evict drops the object the policy evicted; called under mu.
func (s *Store) evict(hash uint64) {
	if v, ok := s.index.LoadAndDelete(hash); ok {
		o := v.(*object)
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
	o := &object{key: key, hash: h, meta: append([]byte(nil), meta...), body: old.body}
	if o.weight() > s.capacity {
		s.remove(old)
		return fmt.Errorf("memory: update meta of %q: %w", key, storage.ErrTooLarge)
	}
	// A resident key that fits is always readmitted; this may evict others.
	s.policy.Insert(h, o.weight(), s.evicted)
	s.index.Store(h, o)
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
	s.index.Delete(o.hash)
	s.policy.Remove(o.hash)
	s.account(o, -1)
}

// Range calls fn for each committed object without holding a lock, so fn
// may call back into the store (purge-all deletes from it). An object
// committed or deleted during Range may or may not be visited.
func (s *Store) Range(fn func(key string, meta []byte) bool) {
	s.index.Range(func(_, v any) bool {
		o := v.(*object)
		return fn(o.key, o.meta)
	})
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
	s.index.Range(func(h, v any) bool {
		s.index.Delete(h)
		s.policy.Remove(h.(uint64))
		s.account(v.(*object), -1)
		return true
	})
	return nil
}
