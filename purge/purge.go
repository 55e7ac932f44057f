// Package purge invalidates cached objects by URL, by surrogate key, or all
// at once, softly (mark stale, so stale-while-revalidate and stale-if-error
// still protect the origin) or hard (remove).
//
// It keeps the surrogate-key index by wrapping the cache's storage.Store:
// every committed object's keys (read from its metadata by a function the
// cache provides) are indexed, deletes remove them, and on start the index
// is rebuilt from the store's Range, in the background so that a big disk
// store serves from its first seconds (a purge by surrogate key waits for
// the rebuild), so a persistent store's objects are found again after a
// restart; objects the store adopts later (a disk store
// taking in what a process draining during an upgrade stored) are indexed
// as they come, or refused when a purge marked since may cover them. Objects the store evicts on its own are
// dropped from the index by a background pruning pass once the index holds
// more than twice the store's objects. A fill that began before a purge of its key
// or one of its surrogate keys is refused at commit: the body it carries
// was fetched before the purge and must not be stored as fresh. The purge
// marks that decide it are bounded (see marks): under a burst of purges
// the oldest are folded into one watermark, which errs towards refusing.
//
// Commits and purge marks exclude each other (commitMu): a commit either
// sees the mark and is refused, or is complete and indexed before the mark
// is set, so the purge that follows the mark finds and purges it.
package purge

import (
	"errors"
	"iter"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// Tagger yields the surrogate keys recorded in an object's metadata.
type Tagger func(meta []byte) iter.Seq[[]byte]

// Store is a storage.Store that keeps the surrogate-key index.
type Store struct {
	storage.Store
	tags Tagger

	seq atomic.Uint64 // purge generations; writers note it at Create

	// Refused counts fills not kept because a purge touched them, and
	// adopted objects a purge may have touched.
	Refused atomic.Int64

	// commitMu is held shared by commits (check, commit, index) and
	// exclusively while a purge mark is set.
	commitMu sync.RWMutex
	// urlPurges counts URL purges under way: while one runs, the keys the
	// cache deletes or updates are marked first (only the cache knows how
	// a URL maps to storage keys).
	urlPurges atomic.Int32

	// hiding counts refused fills being committed and deleted, whose keys
	// (with their counts) are in hiddenKeys: Lookup does not find them.
	hiding atomic.Int32
	// pruning is set while prune runs.
	pruning atomic.Bool

	mu         sync.Mutex
	hiddenKeys map[string]int
	byTag      map[string]map[string]struct{} // surrogate key -> storage keys
	byKey      map[string][]string            // storage key -> its surrogate keys
	added      int                            // entries added to byKey, for pruning
	marks      marks

	rebuilt chan struct{} // closed once Wrap's Range is done
}

// Wrap indexes store, rebuilding the index from what it holds in the
// background: reading every object's metadata from a disk store of
// millions takes minutes. Lookups, commits and purges by URL go on
// meanwhile; a purge by surrogate key waits for the rebuild, and the
// objects committed, updated or adopted meanwhile are indexed as usual.
func Wrap(store storage.Store, tags Tagger) *Store {
	s := &Store{Store: store, tags: tags, byTag: map[string]map[string]struct{}{},
		byKey: map[string][]string{}, marks: newMarks(), hiddenKeys: map[string]int{},
		rebuilt: make(chan struct{})}
	if a, ok := store.(storage.Adopter); ok {
		a.OnAdopt(s.adopt) // first: an object adopted during the Range is found either way
	}
	go s.rebuild()
	return s
}

// rebuild indexes what the store held at Wrap.
func (s *Store) rebuild() {
	defer close(s.rebuilt)
	s.Store.Range(func(key string, meta []byte) bool {
		var list []string
		for t := range s.tags(meta) {
			list = append(list, string(t))
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		// A key indexed already was committed, updated or adopted since
		// Wrap: its entry is newer than the metadata Range read. (A key
		// deleted since is indexed again, and pruned.)
		if _, ok := s.byKey[key]; !ok {
			s.indexLocked(key, list)
		}
		return true
	})
}

// adopt indexes an object that the store adopted from another process (a
// process draining during an upgrade stored it), unless a purge marked
// here may cover it. When that process fetched the object is not known,
// so it counts as a fill begun before every purge marked: one of its key
// or surrogate keys, or a purge-all, refuses it.
func (s *Store) adopt(key string, meta []byte) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.purgedLocked(key, meta, 0) {
		s.Refused.Add(1)
		return false
	}
	var list []string
	for t := range s.tags(meta) {
		list = append(list, string(t))
	}
	s.indexLocked(key, list)
	return true
}

var _ storage.Store = (*Store)(nil)

// index records key's surrogate keys.
func (s *Store) index(key string, meta []byte) {
	s.mu.Lock()
	same := s.sameTagsLocked(key, meta)
	s.mu.Unlock()
	if same {
		return // a soft purge or a revalidation that kept the keys
	}
	var list []string
	for t := range s.tags(meta) {
		list = append(list, string(t))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexLocked(key, list)
}

// indexLocked records that key has the surrogate keys list.
func (s *Store) indexLocked(key string, list []string) {
	s.unindexLocked(key)
	if len(list) == 0 {
		return
	}
	s.byKey[key] = list
	for _, t := range list {
		set := s.byTag[t]
		if set == nil {
			set = map[string]struct{}{}
			s.byTag[t] = set
		}
		set[key] = struct{}{}
	}
	if s.added++; s.added%pruneEvery == 0 && s.pruning.CompareAndSwap(false, true) {
		go s.prune()
	}
}

// The store evicts objects without telling the index, so the index is
// pruned of keys no longer stored: checked every pruneEvery new entries,
// done when it holds more than twice the store's objects plus pruneSlack,
// pruneBatch keys at a time.
const (
	pruneEvery = 4096
	pruneSlack = 1024
	pruneBatch = 256
)

// prune drops the index entries of objects the store no longer holds.
func (s *Store) prune() {
	defer s.pruning.Store(false)
	s.mu.Lock()
	n := len(s.byKey)
	s.mu.Unlock()
	if int64(n) <= 2*s.Store.Stats().Objects+pruneSlack {
		return
	}
	s.mu.Lock()
	keys := make([]string, 0, len(s.byKey))
	for k := range s.byKey {
		keys = append(keys, k)
	}
	s.mu.Unlock()
	for batch := range slices.Chunk(keys, pruneBatch) {
		s.pruneBatch(batch)
	}
}

// pruneBatch unindexes the keys of batch that are not stored. Commits are
// held off meanwhile, so a key found missing cannot be committed and
// indexed before it is unindexed.
func (s *Store) pruneBatch(batch []string) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	for _, k := range batch {
		obj, err := s.Store.Lookup(k)
		if err == nil {
			obj.Close()
			continue
		}
		s.mu.Lock()
		s.unindexLocked(k)
		s.mu.Unlock()
	}
}

// sameTagsLocked reports whether key is indexed with exactly the surrogate
// keys of meta, in order.
func (s *Store) sameTagsLocked(key string, meta []byte) bool {
	old, ok := s.byKey[key]
	if !ok {
		return false
	}
	i := 0
	for t := range s.tags(meta) {
		if i >= len(old) || old[i] != string(t) {
			return false
		}
		i++
	}
	return i == len(old)
}

func (s *Store) unindexLocked(key string) {
	for _, t := range s.byKey[key] {
		if set := s.byTag[t]; set != nil {
			delete(set, key)
			if len(set) == 0 {
				delete(s.byTag, t)
			}
		}
	}
	delete(s.byKey, key)
}

// Create wraps the writer so that its commit indexes the object, or is
// refused when a purge touched it meanwhile.
func (s *Store) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	return s.CreateSince(key, meta, sizeHint, s.seq.Load())
}

// Generation returns the purge generation: a cache notes it when it sends
// a request to the origin and gives it to CreateSince or UpdateMetaSince,
// so that a purge between the request and the store is caught even when
// it came before the response did.
func (s *Store) Generation() uint64 { return s.seq.Load() }

// CreateSince is Create for a fill whose origin request was sent at
// generation gen (from Generation): its commit is refused when a purge
// touched the object since gen.
func (s *Store) CreateSince(key string, meta []byte, sizeHint int64, gen uint64) (storage.Writer, error) {
	w, err := s.Store.Create(key, meta, sizeHint)
	if err != nil {
		return nil, err
	}
	return &writer{Writer: w, s: s, key: key, meta: meta, seq: min(gen, s.seq.Load())}, nil
}

// ErrPurged is returned by UpdateMetaSince when a purge touched the
// object after the revalidation began: the object stays as the purge left
// it.
var ErrPurged = errors.New("purge: object purged while it was revalidated")

// UpdateMetaSince is UpdateMeta for a revalidation whose request was sent
// at generation gen (from Generation). A 304 that left the origin before
// a purge must not make the purged object fresh again: when a purge
// touched the object or its surrogate keys since gen, nothing is changed
// and ErrPurged is returned.
func (s *Store) UpdateMetaSince(key string, meta []byte, gen uint64) error {
	s.commitMu.RLock()
	defer s.commitMu.RUnlock()
	if s.purgedSince(key, meta, gen) {
		return ErrPurged
	}
	if err := s.Store.UpdateMeta(key, meta); err != nil {
		return err
	}
	s.index(key, meta)
	return nil
}

// UpdateMeta re-indexes the object (a revalidation may bring new keys).
func (s *Store) UpdateMeta(key string, meta []byte) error {
	if s.urlPurges.Load() > 0 {
		s.mark(key)
	}
	if err := s.Store.UpdateMeta(key, meta); err != nil {
		return err
	}
	s.index(key, meta)
	return nil
}

// Delete removes the object and its index entries.
func (s *Store) Delete(key string) bool {
	if s.urlPurges.Load() > 0 {
		s.mark(key)
	}
	s.mu.Lock()
	s.unindexLocked(key)
	s.mu.Unlock()
	return s.Store.Delete(key)
}

// Lookup finds the committed object under key, unless it is a refused
// fill on its way out.
func (s *Store) Lookup(key string) (storage.Object, error) {
	if s.hiding.Load() > 0 && s.hidden(key) {
		return nil, storage.ErrNotFound
	}
	return s.Store.Lookup(key)
}

// Contains reports whether key is stored (storage.Container), from the
// wrapped store's index when it keeps one.
func (s *Store) Contains(key string) bool {
	if s.hiding.Load() > 0 && s.hidden(key) {
		return false
	}
	if c, ok := s.Store.(storage.Container); ok {
		return c.Contains(key)
	}
	o, err := s.Store.Lookup(key)
	if err != nil {
		return false
	}
	o.Close()
	return true
}

// hide adds d to the count of refused fills of key being committed and
// deleted.
func (s *Store) hide(key string, d int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hiding.Add(int32(d))
	if s.hiddenKeys[key] += d; s.hiddenKeys[key] == 0 {
		delete(s.hiddenKeys, key)
	}
}

func (s *Store) hidden(key string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hiddenKeys[key] > 0
}

// Keys returns the storage keys tagged with surrogate key tag, once the
// index is rebuilt.
func (s *Store) Keys(tag string) []string {
	<-s.rebuilt
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byTag[tag]
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	return out
}

// take removes surrogate key tag from the index and returns the storage
// keys it tagged, for a hard purge that deletes them all: one map dropped
// instead of a hundred thousand entries deleted one by one.
func (s *Store) take(tag string) map[string]struct{} {
	<-s.rebuilt
	s.mu.Lock()
	defer s.mu.Unlock()
	set := s.byTag[tag]
	delete(s.byTag, tag)
	return set
}

// Tags returns how many surrogate keys are indexed.
func (s *Store) Tags() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.byTag)
}

// mark records a purge generation for a storage key or "tag:"+surrogate
// key before the objects are purged, so that fills racing the purge see
// it at commit.
func (s *Store) mark(name string) {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	g := s.seq.Add(1)
	s.mu.Lock()
	s.marks.add(name, g, time.Now())
	s.mu.Unlock()
}

func (s *Store) markAll() {
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	g := s.seq.Add(1)
	s.mu.Lock()
	s.marks.all(g)
	s.mu.Unlock()
}

// purgedSince reports whether a purge touching key or its tags happened
// after generation seq.
func (s *Store) purgedSince(key string, meta []byte, seq uint64) bool {
	if s.seq.Load() == seq {
		return false // no purge at all since the fill began: the common case
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.purgedLocked(key, meta, seq)
}

func (s *Store) purgedLocked(key string, meta []byte, seq uint64) bool {
	if s.marks.since(key, seq) {
		return true
	}
	for t := range s.tags(meta) {
		if s.marks.since("tag:"+string(t), seq) {
			return true
		}
	}
	return false
}

// writer commits through the index.
type writer struct {
	storage.Writer
	s    *Store
	key  string
	meta []byte
	seq  uint64
}

// Release forwards to the store's writer (storage.Releaser).
func (w *writer) Release() {
	if r, ok := w.Writer.(storage.Releaser); ok {
		r.Release()
	}
}

// Commit stores the object, unless a purge touched it since the fill
// began. A refused fill is still committed and then deleted at once, out
// of sight of Lookup, and Commit reports success: the readers following
// the writer (requests that began before the purge) get the whole body
// instead of an error, and no request after the purge sees it.
func (w *writer) Commit() error {
	w.s.commitMu.RLock()
	defer w.s.commitMu.RUnlock()
	if !w.s.purgedSince(w.key, w.meta, w.seq) {
		if err := w.Writer.Commit(); err != nil {
			return err
		}
		w.s.index(w.key, w.meta)
		return nil
	}
	w.s.hide(w.key, +1)
	defer w.s.hide(w.key, -1)
	if err := w.Writer.Commit(); err != nil {
		return err
	}
	w.s.mu.Lock()
	w.s.unindexLocked(w.key) // the object this one replaced
	w.s.mu.Unlock()
	w.s.Store.Delete(w.key)
	w.s.Refused.Add(1)
	return nil
}
