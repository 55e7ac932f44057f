// Package tiered puts a fast store in front of a large one: memory in front
// of disk. Objects are written through to both (the fast tier drops those
// too large for it), looked up in the fast tier first, and copied up from
// the slow tier on a hit when they are small enough, so the working set is
// served from memory while the disk keeps everything across restarts.
package tiered

import (
	"errors"
	"sync"

	"github.com/outpost-edge/outpost/storage"
)

// Store is a two-tier storage.Store.
type Store struct {
	fast, slow storage.Store
	// PromoteMax is the largest object copied up to the fast tier on a
	// slow-tier hit, in bytes.
	promoteMax int64
}

var _ storage.Store = (*Store)(nil)

// New returns fast in front of slow. Objects up to promoteMax bytes found
// only in slow are copied into fast when read.
func New(fast, slow storage.Store, promoteMax int64) *Store {
	return &Store{fast: fast, slow: slow, promoteMax: promoteMax}
}

// Lookup tries the fast tier, then the slow one.
func (s *Store) Lookup(key string) (storage.Object, error) {
	if o, err := s.fast.Lookup(key); err == nil {
		return o, nil
	}
	o, err := s.slow.Lookup(key)
	if err != nil {
		return nil, err
	}
	if o.Size() <= s.promoteMax {
		s.promote(key, o)
	}
	return o, nil
}

// promote copies a small object into the fast tier; failure only means it
// stays where it is.
func (s *Store) promote(key string, o storage.Object) {
	w, err := s.fast.Create(key, o.Meta(), o.Size())
	if err != nil {
		return
	}
	buf := make([]byte, o.Size())
	if n, err := o.ReadAt(buf, 0); int64(n) != o.Size() && err != nil {
		w.Abort()
		return
	}
	if _, err := w.Write(buf); err != nil {
		w.Abort()
		return
	}
	_ = w.Commit()
}

// Create writes through to both tiers.
func (s *Store) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	slow, err := s.slow.Create(key, meta, sizeHint)
	if err != nil {
		// The disk is full or failing: memory alone still serves.
		return s.fast.Create(key, meta, sizeHint)
	}
	w := &writer{slow: slow}
	if fast, err := s.fast.Create(key, meta, sizeHint); err == nil {
		w.fast = fast
	}
	return w, nil
}

// UpdateMeta updates both tiers.
func (s *Store) UpdateMeta(key string, meta []byte) error {
	e1 := s.fast.UpdateMeta(key, meta)
	e2 := s.slow.UpdateMeta(key, meta)
	if e1 == nil || e2 == nil {
		return nil
	}
	return errors.Join(e1, e2)
}

// Delete removes the object from both tiers.
func (s *Store) Delete(key string) bool {
	a := s.fast.Delete(key)
	b := s.slow.Delete(key)
	return a || b
}

// Range visits every object once, fast tier first.
func (s *Store) Range(fn func(key string, meta []byte) bool) {
	seen := map[string]struct{}{}
	more := true
	s.fast.Range(func(key string, meta []byte) bool {
		seen[key] = struct{}{}
		more = fn(key, meta)
		return more
	})
	if !more {
		return
	}
	s.slow.Range(func(key string, meta []byte) bool {
		if _, ok := seen[key]; ok {
			return true
		}
		return fn(key, meta)
	})
}

// Stats adds up both tiers.
func (s *Store) Stats() storage.Stats {
	a, b := s.fast.Stats(), s.slow.Stats()
	return storage.Stats{Objects: b.Objects, Bytes: a.Bytes + b.Bytes, Capacity: a.Capacity + b.Capacity, Evictions: a.Evictions + b.Evictions}
}

// Tiers returns each tier's stats: fast, then slow.
func (s *Store) Tiers() (fast, slow storage.Stats) { return s.fast.Stats(), s.slow.Stats() }

// Close closes both tiers.
func (s *Store) Close() error { return errors.Join(s.fast.Close(), s.slow.Close()) }

// writer writes one object to both tiers; the slow tier is the one that
// must succeed, the fast one is dropped at its first error.
type writer struct {
	mu   sync.Mutex // guards fast
	slow storage.Writer
	fast storage.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	n, err := w.slow.Write(p)
	if err != nil {
		return n, err
	}
	w.mu.Lock()
	if w.fast != nil {
		if _, err := w.fast.Write(p); err != nil {
			w.fast.Abort()
			w.fast = nil
		}
	}
	w.mu.Unlock()
	return n, nil
}

func (w *writer) ReadAt(p []byte, off int64) (int, error) { return w.slow.ReadAt(p, off) }
func (w *writer) Written() int64                          { return w.slow.Written() }

func (w *writer) Commit() error {
	if err := w.slow.Commit(); err != nil {
		w.abortFast()
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fast != nil {
		_ = w.fast.Commit()
	}
	return nil
}

func (w *writer) Abort() {
	w.slow.Abort()
	w.abortFast()
}

func (w *writer) abortFast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fast != nil {
		w.fast.Abort()
		w.fast = nil
	}
}
