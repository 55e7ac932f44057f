// Package memory is an in-memory storage.Store bounded in bytes. Objects are
// kept whole in memory and evicted by the evict package's policy (S3-FIFO
// with TinyLFU admission); it knows nothing of HTTP.
//
// A hit costs one read-locked map lookup in a shard and an atomic hit count:
// Lookup returns the committed object itself, which is immutable, so it
// allocates nothing, Close has nothing to release, and its body can be
// written to a socket without a copy (storage.Bytes). An object deleted,
// replaced or evicted while a reader holds it stays readable because the
// reader still references it; its bytes leave the budget at once and the
// memory when the last reader drops it.
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

const (
	defaultCapacity = 256 << 20
	shardCount      = 64
)

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
	// evictions they cause. Lock order: mu, then the policy's locks, then
	// a shard's. Lookup takes only a shard's read lock.
	mu        sync.Mutex
	objects   int64
	bytes     int64 // bodies plus metadata, as storage.Stats counts them
	evictions int64

	// shards index committed objects by key hash; written under mu.
	shards [shardCount]shard
}

var _ storage.Store = (*Store)(nil)

type shard struct {
	mu sync.RWMutex
	m  map[uint64]*object
	_  [32]byte // keep neighbouring locks on separate cache lines
}

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
	for i := range s.shards {
		s.shards[i].m = make(map[uint64]*object)
	}
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

func (s *Store) shardOf(hash uint64) *shard { return &s.shards[hash%shardCount] }

// get returns the committed object under key, or nil.
func (s *Store) get(key string, hash uint64) *object {
	sh := s.shardOf(hash)
	sh.mu.RLock()
	o := sh.m[hash]
	sh.mu.RUnlock()
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

// Create starts an object under key. A sizeHint above the maximum object
// size fails at once with storage.ErrTooLarge.
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
	admitted := s.policy.Insert(o.hash, o.weight(), s.evicted)
	sh := s.shardOf(o.hash)
	sh.mu.Lock()
	old := sh.m[o.hash]
	if admitted {
		sh.m[o.hash] = o
	} else {
		delete(sh.m, o.hash)
	}
	sh.mu.Unlock()
	if old != nil {
		s.account(old, -1)
	}
	if admitted {
		s.account(o, 1)
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
	sh := s.shardOf(hash)
	sh.mu.Lock()
	o := sh.m[hash]
	delete(sh.m, hash)
	sh.mu.Unlock()
	if o != nil {
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
	sh := s.shardOf(h)
	sh.mu.Lock()
	sh.m[h] = o
	sh.mu.Unlock()
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
	sh := s.shardOf(o.hash)
	sh.mu.Lock()
	delete(sh.m, o.hash)
	sh.mu.Unlock()
	s.policy.Remove(o.hash)
	s.account(o, -1)
}

// Range calls fn for each committed object, one shard's snapshot at a time,
// without holding a lock, so fn may call back into the store (purge-all
// deletes from it). An object deleted during Range may still be visited.
func (s *Store) Range(fn func(key string, meta []byte) bool) {
	var batch []*object
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		batch = batch[:0]
		for _, o := range sh.m {
			batch = append(batch, o)
		}
		sh.mu.RUnlock()
		for _, o := range batch {
			if !fn(o.key, o.meta) {
				return
			}
		}
	}
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
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for h, o := range sh.m {
			s.policy.Remove(h)
			s.account(o, -1)
		}
		clear(sh.m)
		sh.mu.Unlock()
	}
	return nil
}
