package disk

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/outpost-edge/outpost/storage"
)

// fullDiskChild runs with a 256 KiB file size limit, the closest an
// unprivileged test gets to a full disk: writes past it fail with EFBIG
// (the Go runtime ignores SIGXFSZ). It exits non-zero on the first
// surprise.
func fullDiskChild(dir string) error {
	s, err := Open(dir, Options{Capacity: 64 << 20})
	if err != nil {
		return err
	}
	if err := put(s, "before", []byte("m"), body("before", 1000)); err != nil {
		return err
	}
	lim := syscall.Rlimit{Cur: 256 << 10, Max: 256 << 10}
	if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
		return err
	}
	w, err := s.Create("big", []byte("m"), -1)
	if err != nil {
		return err
	}
	chunk := body("big", 64<<10)
	var werr error
	for range 16 {
		if _, werr = w.Write(chunk); werr != nil {
			break
		}
	}
	if !errors.Is(werr, syscall.EFBIG) {
		return fmt.Errorf("writing past the limit: %v, want EFBIG", werr)
	}
	if err := w.Commit(); err == nil {
		return errors.New("Commit after a failed Write succeeded")
	}
	if _, err := w.ReadAt(make([]byte, 1), 0); !errors.Is(err, storage.ErrAborted) {
		return fmt.Errorf("ReadAt of the failed writer: %v, want ErrAborted", err)
	}
	if _, _, ok, _ := get(s, "big"); ok {
		return errors.New("the failed object is served")
	}
	if _, tmp := files(nopTB{}, dir); len(tmp) != 0 {
		return fmt.Errorf("failed fill left %v in tmp/", tmp)
	}
	if _, b, ok, err := get(s, "before"); !ok || err != nil || len(b) != 1000 {
		return fmt.Errorf("object stored before the failure: found=%v err=%v", ok, err)
	}
	return put(s, "after", []byte("m"), body("after", 1000))
}

// nopTB lets the child use test helpers that take a testing.TB.
type nopTB struct{ testing.TB }

func (nopTB) Helper() {}

func TestFullDiskFailsTheFillNotTheStore(t *testing.T) {
	dir := t.TempDir()
	cmd, _, _ := child(t, "full", dir)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	s := openStore(t, dir, Options{Capacity: 64 << 20})
	mustHave(t, s, "before", []byte("m"), body("before", 1000))
	mustHave(t, s, "after", []byte("m"), body("after", 1000))
	mustMiss(t, s, "big")
}

// Changes behind the store's back: each must end in a miss or an error from
// Create, Commit or UpdateMeta, never a panic or wrong bytes.
func TestObjectFileRemovedBehindTheStoreIsAMiss(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 1 << 20})
	mustPut(t, s, "k", []byte("m"), body("k", 1000))
	open, err := s.Lookup("k")
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	os.Remove(s.path(s.hash("k")))
	mustMiss(t, s, "k")
	if n := s.Stats().Objects; n != 0 {
		t.Fatalf("Stats().Objects = %d after the file went, want 0", n)
	}
	if err := s.UpdateMeta("k", []byte("x")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateMeta: %v, want ErrNotFound", err)
	}
	b := make([]byte, 1000)
	if n, err := open.ReadAt(b, 0); n != 1000 || err != nil && n != 1000 {
		t.Fatalf("reader opened before the removal: n=%d err=%v", n, err)
	}
}

func TestDirectoriesRemovedBehindTheStore(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "k", []byte("m"), body("k", 1000))
	os.RemoveAll(filepath.Join(dir, "objects"))
	mustMiss(t, s, "k")
	mustPut(t, s, "k2", []byte("m"), body("k2", 1000)) // fan-out recreated
	mustHave(t, s, "k2", []byte("m"), body("k2", 1000))

	os.RemoveAll(filepath.Join(dir, "tmp"))
	mustPut(t, s, "k3", []byte("m"), body("k3", 1000)) // tmp/ recreated
	mustHave(t, s, "k3", []byte("m"), body("k3", 1000))

	os.RemoveAll(filepath.Join(dir, "tmp"))
	os.WriteFile(filepath.Join(dir, "tmp"), []byte("not a directory"), 0o600)
	if w, err := s.Create("k4", nil, -1); err == nil {
		w.Abort()
		t.Fatal("Create with a file in place of tmp/ succeeded")
	}
	mustHave(t, s, "k2", []byte("m"), body("k2", 1000))
}

func TestObjectsDirectoryReplacedByAFileFailsCommits(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "k", []byte("m"), body("k", 1000))
	objects := filepath.Join(dir, "objects")
	os.RemoveAll(objects)
	os.WriteFile(objects, []byte("not a directory"), 0o600)
	if err := put(s, "k2", nil, body("k2", 1000)); err == nil {
		t.Fatal("commit into a file succeeded")
	}
	mustMiss(t, s, "k")
	mustMiss(t, s, "k2")
	if err := s.UpdateMeta("k", []byte("x")); err == nil {
		t.Fatal("UpdateMeta succeeded")
	}
	s.Range(func(string, []byte) bool { t.Fatal("Range found an object"); return false })
	if st := s.Stats(); st.Objects != 0 {
		t.Fatalf("Stats() = %+v, want no objects", st)
	}
}

func TestTinyCapacityRefusesOrEvicts(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 32 << 10, MaxObjectSize: 4 << 10})
	if _, err := s.Create("k", nil, 5<<10); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Create with a hint over the limit: %v, want ErrTooLarge", err)
	}
	if err := put(s, "k", nil, body("k", 5<<10)); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("writing past the limit: %v, want ErrTooLarge", err)
	}
	if _, err := s.Create(strings.Repeat("k", maxKeyLen+1), nil, 0); !errors.Is(err, storage.ErrTooLarge) {
		t.Fatalf("Create with a huge key: %v, want ErrTooLarge", err)
	}
	for i := range 20 {
		mustPut(t, s, fmt.Sprintf("k%d", i), nil, body("k", 2000))
	}
	st := s.Stats()
	objs, tmp := files(t, dir)
	var onDisk int64
	for _, name := range objs {
		fi, _ := os.Stat(name)
		onDisk += s.weigh(fi.Size()) + entryShare
	}
	if st.Bytes > st.Capacity-s.reserve() || onDisk != st.Bytes || int64(len(objs)) != st.Objects || len(tmp) != 0 {
		t.Fatalf("Stats %+v; on disk %d files of %d bytes, tmp %v", st, len(objs), onDisk, tmp)
	}
}

func TestUpdateMetaInPlaceOrByCopy(t *testing.T) {
	for _, tt := range []struct {
		name    string
		meta    string
		inPlace bool
	}{
		{"shorter", "m", true},
		{"within the slack", strings.Repeat("m", 100), true},
		{"past the slack", strings.Repeat("m", 1000), false},
		{"empty", "", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{Capacity: 1 << 20})
			b := body("k", 100_000)
			mustPut(t, s, "k", []byte("original metadata"), b)
			file := s.path(s.hash("k"))
			before, _ := os.Stat(file)
			reader, err := s.Lookup("k")
			if err != nil {
				t.Fatal(err)
			}
			defer reader.Close()
			if err := s.UpdateMeta("k", []byte(tt.meta)); err != nil {
				t.Fatalf("UpdateMeta: %v", err)
			}
			after, _ := os.Stat(file)
			if got := os.SameFile(before, after); got != tt.inPlace {
				t.Fatalf("same file after UpdateMeta = %v, want %v", got, tt.inPlace)
			}
			mustHave(t, s, "k", []byte(tt.meta), b)
			if string(reader.Meta()) != "original metadata" {
				t.Fatalf("open reader's meta changed to %q", reader.Meta())
			}
			if st := s.Stats(); st.Bytes != s.weigh(after.Size())+entryShare {
				t.Fatalf("Stats().Bytes = %d, file is %d bytes", st.Bytes, after.Size())
			}
			s.Close()
			s = openStore(t, dir, Options{Capacity: 1 << 20})
			mustHave(t, s, "k", []byte(tt.meta), b)
		})
	}
}

func TestLargeObjectsStreamWithoutBuffering(t *testing.T) {
	const size = 64 << 20
	s := openStore(t, t.TempDir(), Options{Capacity: 1 << 30})
	chunk := body("chunk", 256<<10)
	alloc := allocated(func() {
		w, err := s.Create("big", nil, size)
		if err != nil {
			t.Fatal(err)
		}
		for range size / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		o, err := s.Lookup("big")
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		p := make([]byte, len(chunk))
		for off := int64(0); off < size; off += int64(len(p)) {
			if n, err := o.ReadAt(p, off); n != len(p) || err != nil && off+int64(n) != size {
				t.Fatalf("ReadAt %d: n=%d err=%v", off, n, err)
			}
		}
		if string(p) != string(chunk) {
			t.Fatal("last chunk differs")
		}
	})
	if alloc > 2<<20 {
		t.Fatalf("storing and reading %d MiB allocated %d bytes", size>>20, alloc)
	}
}
