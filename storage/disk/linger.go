package disk

import (
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
)

// maxLinger bounds the committed writers that keep their file open for the
// readers following them (see lingerList).
const maxLinger = 256

// lingerList holds the committed writers whose descriptors are still open,
// oldest first. A committed writer keeps its file open so that clients
// collapsed onto the fill read on with pread; Release (the cache calls it
// once the last reader has left) closes it at once, and otherwise the
// oldest is closed when more than max are open, so descriptors never wait
// for the garbage collector. A writer whose file was closed reads the
// committed file by name (readCommitted).
type lingerList struct {
	mu         sync.Mutex
	head, tail *writer // guarded by mu, as are the writers' prev, next and listed
	n, max     int
}

// add appends w and returns the writer pushed out, if any, whose file the
// caller must close.
func (l *lingerList) add(w *writer) *writer {
	l.mu.Lock()
	defer l.mu.Unlock()
	w.prev, w.next, w.listed = l.tail, nil, true
	if l.tail != nil {
		l.tail.next = w
	} else {
		l.head = w
	}
	l.tail = w
	l.n++
	if l.n <= l.max {
		return nil
	}
	old := l.head
	l.unlink(old)
	return old
}

// remove takes w off the list; it reports whether w was on it (and so
// whether its file is still the caller's to close).
func (l *lingerList) remove(w *writer) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !w.listed {
		return false
	}
	l.unlink(w)
	return true
}

// drain empties the list and returns its writers, for Close.
func (l *lingerList) drain() []*writer {
	l.mu.Lock()
	defer l.mu.Unlock()
	var all []*writer
	for l.head != nil {
		w := l.head
		l.unlink(w)
		all = append(all, w)
	}
	return all
}

// unlink runs under mu.
func (l *lingerList) unlink(w *writer) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		l.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		l.tail = w.prev
	}
	w.prev, w.next, w.listed = nil, nil, false
	l.n--
}

// Release closes a committed writer's file now rather than when the store
// needs the descriptor back. Readers may go on calling ReadAt: they read
// the committed file by name. It does nothing before Commit or Abort.
func (w *writer) Release() {
	if w.s.linger.remove(w) {
		w.f.Close()
	}
}

// readCommitted reads body bytes from the object file by name, once the
// writer's own descriptor is closed. The file must still be the one this
// writer committed (same inode): after a replace, delete or eviction the
// read fails rather than return another version's bytes.
func (w *writer) readCommitted(p []byte, off int64) (int, error) {
	f, err := os.Open(w.s.path(w.h))
	if err != nil {
		return 0, fmt.Errorf("disk: rereading %q: %w", w.key, err)
	}
	defer f.Close()
	ino, err := inode(f)
	if err == nil && ino != w.ino {
		err = errReplaced
	}
	if err != nil {
		return 0, fmt.Errorf("disk: rereading %q: %w", w.key, err)
	}
	n, err := readBody(f, p, w.head.bodyOff(), off, w.written.Load())
	if err == nil || err == io.EOF {
		if lerr := checkLength(int(f.Fd()), w.head.bodyOff()+w.written.Load()); lerr != nil {
			return 0, lerr
		}
	}
	return n, err
}

// inode returns the inode number of an open file.
func inode(f *os.File) (uint64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, fmt.Errorf("disk: no inode for %s", f.Name())
	}
	return uint64(st.Ino), nil
}
