package memory

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/outpost-edge/outpost/storage"
)

// errDone: Write or Commit on a writer that was already committed.
var errDone = errors.New("memory: writer already committed")

// writer accumulates a body. Write, ReadAt and Written may run
// concurrently: one goroutine fills while collapsed clients follow.
type writer struct {
	store *Store
	key   string
	head  []byte // key and metadata, as the object keeps them

	written atomic.Int64 // len(buf), readable without the lock

	// mu guards buf and err. buf only grows until commit; bytes below
	// written never change, so a slice taken under the lock stays valid.
	mu  sync.RWMutex
	buf []byte
	// grown is set once a Write outgrew the buffer sized at Create.
	grown bool
	// err is set once the writer cannot commit: storage.ErrTooLarge after
	// an oversized Write, storage.ErrAborted after Abort, errDone after
	// Commit.
	err error
}

var _ storage.Writer = (*writer)(nil)

func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != nil {
		return 0, w.err
	}
	if int64(len(w.buf)+len(p)) > w.store.maxObject {
		w.err = fmt.Errorf("memory: body of %q exceeds %d bytes: %w", w.key, w.store.maxObject, storage.ErrTooLarge)
		return 0, w.err
	}
	before := cap(w.buf)
	w.buf = append(w.buf, p...)
	w.grown = w.grown || cap(w.buf) != before
	w.written.Store(int64(len(w.buf)))
	return len(p), nil
}

func (w *writer) Written() int64 { return w.written.Load() }

// ReadAt reads bytes already written; after Commit it reads the object.
func (w *writer) ReadAt(p []byte, off int64) (int, error) {
	w.mu.RLock()
	buf, err := w.buf, w.err
	w.mu.RUnlock()
	if errors.Is(err, storage.ErrAborted) {
		return 0, err
	}
	return readAt(buf, p, off)
}

// Commit stores the body under the key, replacing any previous object.
func (w *writer) Commit() error {
	w.mu.Lock()
	if w.err != nil {
		err := w.err
		w.discard(fmt.Errorf("memory: commit of %q after %w", w.key, storage.ErrAborted))
		w.mu.Unlock()
		return fmt.Errorf("memory: commit %q: %w", w.key, err)
	}
	// Give back the spare capacity of a buffer that append grew (a
	// buffer sized from the hint only has the allocator's rounding, which
	// a copy would have too); readers of the old slice keep reading
	// identical bytes.
	if w.grown && cap(w.buf)-len(w.buf) > len(w.buf)/8 {
		w.buf = append([]byte(nil), w.buf...)
	}
	w.err = errDone
	o := &object{hash: w.store.hash(w.key), head: w.head, body: w.buf, keyLen: len(w.key)}
	w.mu.Unlock()
	return w.store.commit(o)
}

// Abort discards the body; readers following the writer get ErrAborted.
func (w *writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err != errDone {
		w.discard(fmt.Errorf("memory: write of %q: %w", w.key, storage.ErrAborted))
	}
}

// discard drops the bytes and records why; under mu.
func (w *writer) discard(err error) {
	w.buf = nil
	w.err = err
}
