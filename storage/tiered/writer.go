package tiered

import (
	"errors"
	"sync"

	"github.com/outpost-edge/outpost/storage"
)

// writer fills one object in both tiers. The slow tier's writer is the one
// that must succeed; the fast one is dropped at its first error. With no
// slow writer (the slow tier refused the object) the fast one is all there
// is. Write, Commit and Abort come from the fill's goroutine; ReadAt and
// Written from any.
type writer struct {
	s    *Store
	key  string
	h    uint64
	slow storage.Writer // nil: fast only

	// mu guards fast, which ReadAt reads while the filler may drop it.
	mu   sync.Mutex
	fast storage.Writer // nil once dropped
}

var (
	_ storage.Writer   = (*writer)(nil)
	_ storage.Releaser = (*writer)(nil)
)

func (w *writer) fastWriter() storage.Writer {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fast
}

// dropFast aborts the fast writer and forgets it.
func (w *writer) dropFast() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fast != nil {
		w.fast.Abort()
		w.fast = nil
	}
}

// Write writes to the fast tier first, so that it always has the bytes
// Written counts and ReadAt can read them there.
func (w *writer) Write(p []byte) (int, error) {
	if w.slow == nil {
		return w.fast.Write(p)
	}
	if fast := w.fastWriter(); fast != nil {
		if _, err := fast.Write(p); err != nil {
			w.dropFast()
		}
	}
	return w.slow.Write(p)
}

func (w *writer) Written() int64 {
	if w.slow == nil {
		return w.fast.Written()
	}
	return w.slow.Written()
}

// ReadAt reads from the fast tier's writer while it has the body (no
// system call), else from the slow tier's.
func (w *writer) ReadAt(p []byte, off int64) (int, error) {
	fast := w.fastWriter()
	if fast == nil {
		return w.slow.ReadAt(p, off)
	}
	n, err := fast.ReadAt(p, off)
	if errors.Is(err, storage.ErrAborted) && w.slow != nil { // dropped meanwhile
		return w.slow.ReadAt(p, off)
	}
	return n, err
}

// Commit commits the slow tier, then the fast one. A tier that does not
// get the new version loses its old one, so that it never shadows or
// outlives the new version.
func (w *writer) Commit() error {
	w.s.begin(w.h)
	defer w.s.end(w.h)
	if w.slow == nil {
		if err := w.fast.Commit(); err != nil {
			return err
		}
		w.s.slow.Delete(w.key)
		return nil
	}
	if err := w.slow.Commit(); err != nil {
		w.dropFast()
		return err
	}
	fast := w.fastWriter()
	if fast == nil || fast.Commit() != nil {
		w.dropFast()
		w.s.fast.Delete(w.key)
	}
	return nil
}

func (w *writer) Abort() {
	if w.slow != nil {
		w.slow.Abort()
		w.dropFast()
		return
	}
	w.fast.Abort()
}

// Release forwards to the tiers' writers that hold resources.
func (w *writer) Release() {
	for _, t := range []storage.Writer{w.slow, w.fastWriter()} {
		if r, ok := t.(storage.Releaser); ok {
			r.Release()
		}
	}
}
