package disk

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/outpost-edge/outpost/storage"
)

// body returns n bytes that depend on seed, so mixed-up objects show.
func body(seed string, n int) []byte {
	var s [32]byte
	copy(s[:], seed)
	b := make([]byte, n)
	rand.NewChaCha8(s).Read(b)
	return b
}

func openStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func put(s storage.Store, key string, meta, b []byte) error {
	w, err := s.Create(key, meta, int64(len(b)))
	if err != nil {
		return err
	}
	for len(b) > 0 {
		n := min(len(b), 64<<10)
		if _, err := w.Write(b[:n]); err != nil {
			w.Commit()
			return err
		}
		b = b[n:]
	}
	return w.Commit()
}

func mustPut(t testing.TB, s storage.Store, key string, meta, b []byte) {
	t.Helper()
	if err := put(s, key, meta, b); err != nil {
		t.Fatalf("storing %q: %v", key, err)
	}
}

// get reads the object under key whole; a miss is ok == false.
func get(s storage.Store, key string) (meta, b []byte, ok bool, err error) {
	o, err := s.Lookup(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil, false, nil
	}
	if err != nil {
		return nil, nil, false, err
	}
	defer o.Close()
	b, err = io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
	return o.Meta(), b, true, err
}

// mustHave checks that key holds meta and body.
func mustHave(t testing.TB, s storage.Store, key string, meta, want []byte) {
	t.Helper()
	m, b, ok, err := get(s, key)
	switch {
	case err != nil:
		t.Fatalf("reading %q: %v", key, err)
	case !ok:
		t.Fatalf("%q is missing", key)
	case !bytes.Equal(m, meta) || !bytes.Equal(b, want):
		t.Fatalf("%q holds meta %q and %d bytes, want %q and %d bytes (equal=%v)", key, m, len(b), meta, len(want), bytes.Equal(b, want))
	}
}

func mustMiss(t testing.TB, s storage.Store, key string) {
	t.Helper()
	if _, _, ok, err := get(s, key); ok || err != nil {
		t.Fatalf("%q: found=%v err=%v, want a miss", key, ok, err)
	}
}

// files lists the object files under dir/objects and the files (not
// directories) under dir/tmp.
func files(t testing.TB, dir string) (objects, tmp []string) {
	t.Helper()
	walkObjects(dir+"/objects", func(_ uint64, name string, _ bool) bool {
		objects = append(objects, name)
		return true
	})
	filepath.WalkDir(dir+"/tmp", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			tmp = append(tmp, path)
		}
		return nil
	})
	return objects, tmp
}

// allocated returns the bytes fn allocated on the heap.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// settle waits until s has fed its policy and swept its directory.
func settle(s *Store) {
	<-s.loaded
	<-s.swept
}

// crash abandons s as a killed process would: the background work stops,
// nothing is compacted or closed cleanly, and its tmp/ lock is released.
func crash(s *Store) {
	s.closed.Store(true)
	close(s.done)
	s.background.Wait()
	s.journal.mu.Lock()
	s.journal.f.Close()
	s.journal.f = nil
	s.journal.mu.Unlock()
	s.lock.Close()
}

// journalFile returns the name of the journal s appends to.
func journalFile(s *Store) string {
	s.journal.mu.Lock()
	defer s.journal.mu.Unlock()
	return journalName(s.dir, s.journal.gen)
}
