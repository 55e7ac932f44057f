package disk

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// openFiles counts the process's descriptors open on files under dir,
// other than the lock held on the store's tmp/ directory and the index
// files.
func openFiles(t *testing.T, dir string) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("cannot list open descriptors: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); err == nil && strings.HasPrefix(target, dir+"/") &&
			!isStoreFile(filepath.Base(target)) {
			n++
		}
	}
	return n
}

// isStoreFile reports whether a file name is the tmp/ lock or an index file.
func isStoreFile(name string) bool {
	for _, p := range []string{"store-", "journal-", "index"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// fillAndCommit writes b under key and commits, returning the writer.
func fillAndCommit(t *testing.T, s *Store, key string, b []byte) storage.Writer {
	t.Helper()
	w, err := s.Create(key, []byte("m"), int64(len(b)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return w
}

// mustReadBack checks that the writer's ReadAt returns want whole.
func mustReadBack(t *testing.T, w storage.Writer, want []byte) {
	t.Helper()
	got := make([]byte, len(want))
	if n, err := w.ReadAt(got, 0); n != len(want) || err != nil && n < len(want) || !bytes.Equal(got, want) {
		t.Fatalf("ReadAt of the committed writer: n=%d err=%v equal=%v", n, err, bytes.Equal(got, want))
	}
}

func TestCommittedWritersHoldBoundedDescriptors(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 64 << 20})
	s.linger.max = 2
	var ws []storage.Writer
	for i := range 6 {
		key := fmt.Sprintf("k%d", i)
		ws = append(ws, fillAndCommit(t, s, key, body(key, 10_000)))
	}
	if n := openFiles(t, dir); n != 2 {
		t.Fatalf("%d files open after 6 unreleased commits, want the bound of 2", n)
	}
	for i, w := range ws { // the closed ones read by name
		key := fmt.Sprintf("k%d", i)
		mustReadBack(t, w, body(key, 10_000))
	}
	for _, w := range ws {
		w.(storage.Releaser).Release()
	}
	if n := openFiles(t, dir); n != 0 {
		t.Fatalf("%d files open after every writer was released", n)
	}
}

func TestReleasedWriterReadsOnOrFailsNeverWrongBytes(t *testing.T) {
	v1, v2 := body("v1", 20_000), body("v2", 20_000)
	for _, tt := range []struct {
		name   string
		change func(s *Store) // after the release; nil changes nothing
	}{
		{"unchanged", nil},
		{"meta updated in place", func(s *Store) { s.UpdateMeta("k", []byte("n")) }},
		{"replaced", func(s *Store) { put(s, "k", []byte("m"), v2) }},
		{"deleted", func(s *Store) { s.Delete("k") }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{Capacity: 64 << 20})
			<-s.swept // the sweep after Open reads object files too
			w := fillAndCommit(t, s, "k", v1)
			w.(storage.Releaser).Release()
			w.(storage.Releaser).Release() // twice is harmless
			// Background work (the journal's compaction, the policy's
			// feed) may have a file open for a moment: a leak stays open.
			n := openFiles(t, dir)
			for deadline := time.Now().Add(2 * time.Second); n != 0 && time.Now().Before(deadline); n = openFiles(t, dir) {
				time.Sleep(10 * time.Millisecond)
			}
			if n != 0 {
				t.Fatalf("%d files open after Release", n)
			}
			if tt.change == nil || tt.name == "meta updated in place" {
				if tt.change != nil {
					tt.change(s)
				}
				mustReadBack(t, w, v1)
				return
			}
			tt.change(s)
			p := make([]byte, len(v1))
			n, err := w.ReadAt(p, 0)
			if err == nil || n > 0 {
				t.Fatalf("ReadAt after the object changed: n=%d err=%v, want a failure", n, err)
			}
		})
	}
}

func TestReleaseBeforeCommitDoesNothing(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 64 << 20})
	w, err := s.Create("k", nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	w.(storage.Releaser).Release()
	b := body("k", 5000)
	if _, err := w.Write(b); err != nil {
		t.Fatalf("Write after an early Release: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit after an early Release: %v", err)
	}
	mustReadBack(t, w, b)
	w.Abort()
	w.(storage.Releaser).Release()
	mustHave(t, s, "k", nil, b)
}

func TestAbortedWriterReleaseAndRead(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 64 << 20})
	w, err := s.Create("k", nil, -1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body("k", 100))
	w.Abort()
	w.(storage.Releaser).Release()
	if _, err := w.ReadAt(make([]byte, 10), 0); !errors.Is(err, storage.ErrAborted) {
		t.Fatalf("ReadAt of an aborted writer: %v, want ErrAborted", err)
	}
}

// Readers following a writer while its descriptor is closed under them
// (by Release or by the bound) read the right bytes throughout.
func TestReadersSurviveTheirWriterBeingReleased(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 64 << 20})
	s.linger.max = 1
	const size = 64 << 10
	for round := range 20 {
		key := fmt.Sprintf("k%d", round)
		want := body(key, size)
		w := fillAndCommit(t, s, key, want)
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				p := make([]byte, 4096)
				for off := 0; off < size; off += len(p) {
					n, err := w.ReadAt(p, int64(off))
					if n != len(p) || err != nil && n < len(p) || !bytes.Equal(p, want[off:off+len(p)]) {
						t.Errorf("round %d: ReadAt at %d: n=%d err=%v", round, off, n, err)
						return
					}
				}
			})
		}
		if round%2 == 0 {
			w.(storage.Releaser).Release()
		} else {
			fillAndCommit(t, s, key+"-other", body("x", 100)) // pushes w off the list
		}
		wg.Wait()
	}
	if n := openFiles(t, dir); n > 1 {
		t.Fatalf("%d files open, want at most the bound of 1", n)
	}
}
