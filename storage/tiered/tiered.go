// Package tiered puts a fast store in front of a large one: memory in front
// of disk. It holds no objects itself and knows nothing of HTTP.
//
// Fills are written through to both tiers (the fast one drops those too
// large for it, and the slow one's failure leaves the fast one alone).
// Lookup tries the fast tier, then the slow one, and returns the tier's own
// object, so a memory hit keeps storage.Bytes and a disk hit io.WriterTo
// (sendfile). Followers of a fill read from the fast tier's writer while it
// has the bytes, with no system call.
//
// An object found in the slow tier twice (a small direct-mapped table of
// recent slow hits remembers the first) and no larger than PromoteMax is
// copied up by one background goroutine. The hit itself only offers the key
// to a queue of 64 and never waits: a full queue drops the promotion. So a
// one-off read of a cold object costs no memory, and a burst of disk hits
// costs no latency.
//
// A promotion must never put back an object that was deleted or replaced
// while it copied. Every change of a key (a commit, a delete, a metadata
// update) marks the key's stripe busy and bumps its generation; a
// promotion commits only if its stripe was idle when it started and
// still has the generation it saw then. The check and the commit run under
// the stripe's mutex, which changes also take to mark their start, so a
// change either begins after the promotion committed (and overwrites or
// deletes its copy) or makes it give up.
package tiered

import (
	"errors"
	"hash/maphash"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/outpost-edge/outpost/storage"
)

// Store is a two-tier storage.Store. Create it with New and Close it to stop
// its promotion goroutine.
type Store struct {
	fast, slow storage.Store
	promoteMax int64
	seed       maphash.Seed

	stripes [256]stripe
	// seen remembers, per slot, the hash of the last key found in the slow
	// tier only: a second hit on the same key promotes it. Lock-free; a
	// clash only delays or skips a promotion.
	seen [4096]atomic.Uint64

	// queue carries keys to promote, owned by promoteLoop, which stops when
	// quit closes (Close).
	queue chan string
	quit  chan struct{}
	loop  sync.WaitGroup
	once  sync.Once

	promoted, dropped atomic.Int64

	// beforeCommit, when set by a test, runs between a promotion's copy and
	// its commit.
	beforeCommit func(key string)
}

// stripe orders promotions against changes of the keys hashed to it.
type stripe struct {
	mu     sync.Mutex
	active int    // changes in progress
	gen    uint64 // bumped when a change starts and when it ends
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Adopter   = (*Store)(nil)
	_ storage.Container = (*Store)(nil)
)

// promoteQueue bounds the promotions waiting for the copier.
const promoteQueue = 64

// New returns fast in front of slow. Objects up to promoteMax bytes found in
// slow twice are copied into fast. The store owns both tiers: Close closes
// them.
func New(fast, slow storage.Store, promoteMax int64) *Store {
	s := &Store{
		fast: fast, slow: slow, promoteMax: promoteMax,
		seed:  maphash.MakeSeed(),
		queue: make(chan string, promoteQueue),
		quit:  make(chan struct{}),
	}
	s.loop.Go(s.promoteLoop)
	return s
}

func (s *Store) hash(key string) uint64 { return maphash.String(s.seed, key) | 1 }

func (s *Store) stripe(h uint64) *stripe { return &s.stripes[byte(h>>56)] }

// begin marks a change of the key hashed to h as started; end as done.
func (s *Store) begin(h uint64) {
	st := s.stripe(h)
	st.mu.Lock()
	st.active++
	st.gen++
	st.mu.Unlock()
}

func (s *Store) end(h uint64) {
	st := s.stripe(h)
	st.mu.Lock()
	st.active--
	st.gen++
	st.mu.Unlock()
}

// Lookup tries the fast tier, then the slow one. It returns the tier's
// object as it is, with its optional interfaces. A slow hit may queue a
// promotion but never waits for it.
func (s *Store) Lookup(key string) (storage.Object, error) {
	if o, err := s.fast.Lookup(key); err == nil {
		return o, nil
	}
	o, err := s.slow.Lookup(key)
	if err != nil {
		return nil, err
	}
	if o.Size() <= s.promoteMax && s.secondHit(key) {
		s.offer(key)
	}
	return o, nil
}

// Contains reports whether either tier holds key (storage.Container),
// without counting a hit towards a promotion.
func (s *Store) Contains(key string) bool { return has(s.fast, key) || has(s.slow, key) }

// secondHit reports whether key is the last key seen in its slot, and
// otherwise records it there.
func (s *Store) secondHit(key string) bool {
	h := s.hash(key)
	slot := &s.seen[h%uint64(len(s.seen))]
	if slot.Load() == h {
		slot.Store(0)
		return true
	}
	slot.Store(h)
	return false
}

// offer queues key for promotion unless the queue is full.
func (s *Store) offer(key string) {
	if len(s.queue) == cap(s.queue) {
		s.dropped.Add(1)
		return
	}
	select {
	case s.queue <- strings.Clone(key): // the caller may reuse key's bytes
	default:
		s.dropped.Add(1)
	}
}

// promoteLoop copies queued objects up until Close. A panic in a tier ends
// the promotions, never the process.
func (s *Store) promoteLoop() {
	defer func() { recover() }()
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-s.quit:
			return
		case key := <-s.queue:
			s.promote(key, buf)
		}
	}
}

// promote copies key's object from the slow tier to the fast one, unless
// the key changes meanwhile (see the package doc).
func (s *Store) promote(key string, buf []byte) {
	h := s.hash(key)
	st := s.stripe(h)
	st.mu.Lock()
	idle, gen := st.active == 0, st.gen
	st.mu.Unlock()
	if !idle || has(s.fast, key) {
		return
	}
	o, err := s.slow.Lookup(key)
	if err != nil {
		return
	}
	defer o.Close()
	w, err := s.fast.Create(key, o.Meta(), o.Size())
	if err != nil {
		return
	}
	if err := copyObject(w, o, buf); err != nil {
		w.Abort()
		return
	}
	if s.beforeCommit != nil {
		s.beforeCommit(key)
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.active != 0 || st.gen != gen {
		w.Abort()
		return
	}
	if w.Commit() == nil {
		s.promoted.Add(1)
	}
}

// copyObject writes o's body to w through buf, or at once when o holds it
// in memory.
func copyObject(w storage.Writer, o storage.Object, buf []byte) error {
	if b, ok := o.(storage.Bytes); ok {
		_, err := w.Write(b.Bytes())
		return err
	}
	for off := int64(0); off < o.Size(); {
		n, err := o.ReadAt(buf[:min(int64(len(buf)), o.Size()-off)], off)
		if n == 0 && err != nil {
			return err
		}
		if _, err := w.Write(buf[:n]); err != nil {
			return err
		}
		off += int64(n)
	}
	return nil
}

// has reports whether st holds key, from its index when it can tell.
func has(st storage.Store, key string) bool {
	if c, ok := st.(storage.Container); ok {
		return c.Contains(key)
	}
	o, err := st.Lookup(key)
	if err != nil {
		return false
	}
	o.Close()
	return true
}

// Create writes through to both tiers. When the slow tier refuses the
// object (a failing disk), the fast tier alone stores it; when both refuse
// it, the slow tier's error is returned.
func (s *Store) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	slow, err := s.slow.Create(key, meta, sizeHint)
	fast, ferr := s.fast.Create(key, meta, sizeHint)
	switch {
	case err != nil && ferr != nil:
		return nil, err
	case err != nil:
		slow = nil
	case ferr != nil:
		fast = nil
	}
	return &writer{s: s, key: key, h: s.hash(key), slow: slow, fast: fast}, nil
}

// UpdateMeta updates both tiers; it fails only if neither holds the key.
func (s *Store) UpdateMeta(key string, meta []byte) error {
	h := s.hash(key)
	s.begin(h)
	defer s.end(h)
	e1 := s.fast.UpdateMeta(key, meta)
	e2 := s.slow.UpdateMeta(key, meta)
	if e1 == nil || e2 == nil {
		return nil
	}
	return errors.Join(e1, e2)
}

// Delete removes the object from both tiers.
func (s *Store) Delete(key string) bool {
	h := s.hash(key)
	s.begin(h)
	defer s.end(h)
	a := s.fast.Delete(key)
	b := s.slow.Delete(key)
	return a || b
}

// OnAdopt hands fn to the slow tier if it adopts objects
// (storage.Adopter); the fast tier, in memory, never does.
func (s *Store) OnAdopt(fn func(key string, meta []byte) bool) {
	if a, ok := s.slow.(storage.Adopter); ok {
		a.OnAdopt(fn)
	}
}

// Range visits every object once: the slow tier's, then those only the
// fast tier holds. It keeps no set of the keys seen; an object moving
// between tiers during the walk may be visited twice or not at all, as with
// any change during Range.
func (s *Store) Range(fn func(key string, meta []byte) bool) {
	more := true
	s.slow.Range(func(key string, meta []byte) bool {
		more = fn(key, meta)
		return more
	})
	if !more {
		return
	}
	s.fast.Range(func(key string, meta []byte) bool {
		return has(s.slow, key) || fn(key, meta)
	})
}

// Stats describes the two tiers as one store. Objects counts each object
// once, so it walks the fast tier's index (about 160 ns per object held in
// memory: for scrapes, never the request path); Bytes and Capacity add up both tiers, so an object held by
// both counts twice; Evictions are the slow tier's, the objects the store
// as a whole lost. TierStats has each tier's own figures.
func (s *Store) Stats() storage.Stats {
	a, b := s.fast.Stats(), s.slow.Stats()
	objects := b.Objects
	s.fast.Range(func(key string, _ []byte) bool {
		if !has(s.slow, key) {
			objects++
		}
		return true
	})
	return storage.Stats{Objects: objects, Bytes: a.Bytes + b.Bytes, Capacity: a.Capacity + b.Capacity, Evictions: b.Evictions}
}

// TierStats are the figures of each tier and of promotions.
type TierStats struct {
	Fast, Slow storage.Stats
	// Promoted counts objects copied up from the slow tier; Dropped, the
	// promotions given up because the queue was full.
	Promoted, Dropped int64
}

// TierStats reports each tier's own stats and the promotion counters.
func (s *Store) TierStats() TierStats {
	return TierStats{Fast: s.fast.Stats(), Slow: s.slow.Stats(), Promoted: s.promoted.Load(), Dropped: s.dropped.Load()}
}

// Close stops promotions and closes both tiers.
func (s *Store) Close() error {
	s.once.Do(func() { close(s.quit) })
	s.loop.Wait()
	return errors.Join(s.fast.Close(), s.slow.Close())
}
