package disk

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"sync"
	"sync/atomic"

	"github.com/outpost-edge/outpost/storage"
)

// writer fills one object in a temporary file. Write, Commit and Abort come
// from the fill's goroutine; ReadAt and Written may come from any.
type writer struct {
	s    *Store
	h    uint64
	key  string
	f    *os.File
	tmp  string
	head header // bodyLen and bodyCRC are set by Commit

	written   atomic.Int64
	aborted   atomic.Bool // set before the file is closed, for ReadAt
	committed atomic.Bool // set once renamed into place, after ino
	ino       uint64      // the file's inode, for readCommitted

	// On the store's lingerList once committed; guarded by its mutex.
	prev, next *writer
	listed     bool

	// mu guards the fields below and serialises Write, Commit and Abort.
	mu   sync.Mutex
	crc  uint32
	done bool  // committed, aborted or failed: no more writes
	err  error // why writes stopped, when they failed
}

var (
	_ storage.Writer   = (*writer)(nil)
	_ storage.Releaser = (*writer)(nil)
)

// Create starts a fill in a temporary file. It fails when the store cannot
// create the file (a read-only disk, say), and with
// storage.ErrTooLarge when sizeHint, the key or meta is over the store's
// limits.
func (s *Store) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	switch {
	case s.closed.Load():
		return nil, ErrClosed
	case sizeHint > s.maxObject:
		return nil, fmt.Errorf("disk: %d-byte object over the %d-byte limit: %w", sizeHint, s.maxObject, storage.ErrTooLarge)
	case len(key) > maxKeyLen || len(meta) > maxMetaLen:
		return nil, fmt.Errorf("disk: %d-byte key or %d-byte metadata: %w", len(key), len(meta), storage.ErrTooLarge)
	}
	f, err := s.createTemp("fill-")
	if err != nil {
		return nil, fmt.Errorf("disk: creating fill of %q: %w", key, err)
	}
	// The header is written by Commit, once the body's length and CRC are
	// known; until then the file is a hole followed by the body.
	return &writer{s: s, h: s.hash(key), key: key, f: f, tmp: f.Name(), head: newHeader(key, bytes.Clone(meta))}, nil
}

// Write appends p to the body. After an error the writer accepts no more
// bytes and Commit fails.
func (w *writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return 0, w.stopped()
	}
	off := w.written.Load()
	if off+int64(len(p)) > w.s.maxObject {
		w.fail(fmt.Errorf("disk: object over the %d-byte limit: %w", w.s.maxObject, storage.ErrTooLarge))
		return 0, w.err
	}
	n, err := w.f.WriteAt(p, w.head.bodyOff()+off)
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	w.written.Add(int64(n))
	if err != nil {
		w.fail(fmt.Errorf("disk: writing %q: %w", w.key, err))
		return n, w.err
	}
	return n, nil
}

// stopped explains why a finished writer refuses to write or commit.
func (w *writer) stopped() error {
	if w.err != nil {
		return w.err
	}
	if w.aborted.Load() {
		return storage.ErrAborted
	}
	return errors.New("disk: writer already committed")
}

// fail stops the writer with err and drops its file.
func (w *writer) fail(err error) {
	w.done, w.err = true, err
	w.discard()
}

func (w *writer) discard() {
	w.aborted.Store(true)
	w.f.Close()
	os.Remove(w.tmp)
}

// ReadAt reads body bytes already written; at or past Written() it returns
// io.EOF. After Commit it keeps reading the committed file, by name once
// the writer's descriptor has been released.
func (w *writer) ReadAt(p []byte, off int64) (int, error) {
	if w.aborted.Load() {
		return 0, storage.ErrAborted
	}
	n, err := readBody(w.f, p, w.head.bodyOff(), off, w.written.Load())
	if errors.Is(err, os.ErrClosed) {
		if w.committed.Load() {
			return w.readCommitted(p, off)
		}
		return n, storage.ErrAborted
	}
	return n, err
}

func (w *writer) Written() int64 { return w.written.Load() }

// Commit completes the header, syncs if the store says so and renames the
// file into place. The file stays open for the clients following the fill
// until Release, or until the store needs the descriptor back (lingerList).
func (w *writer) Commit() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return w.stopped()
	}
	w.done = true
	if err := w.finish(); err != nil {
		w.fail(err)
		return err
	}
	w.committed.Store(true)
	if old := w.s.linger.add(w); old != nil {
		old.f.Close()
	}
	return nil
}

func (w *writer) finish() error {
	w.head.bodyLen, w.head.bodyCRC = w.written.Load(), w.crc
	if _, err := w.f.WriteAt(w.head.appendTo(nil), 0); err != nil {
		return fmt.Errorf("disk: writing header of %q: %w", w.key, err)
	}
	// An empty body leaves the file short of its metadata slack: extend it
	// to the length the header promises.
	if w.head.bodyLen == 0 {
		if err := w.f.Truncate(w.head.fileSize()); err != nil {
			return fmt.Errorf("disk: sizing %q: %w", w.key, err)
		}
	}
	if w.s.sync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("disk: syncing %q: %w", w.key, err)
		}
	}
	ino, err := inode(w.f)
	if err != nil {
		return fmt.Errorf("disk: committing %q: %w", w.key, err)
	}
	w.ino = ino
	return w.s.insert(w.h, w.tmp, w.head.fileSize())
}

// Abort drops the fill; readers following it get storage.ErrAborted.
func (w *writer) Abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.done, w.err = true, storage.ErrAborted
		w.discard()
	}
}
