package disk

import (
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path/filepath"
	"syscall"
	"testing"
)

// diskUsage is what du reports for dir: the blocks allocated to every file
// and directory under it, itself included. A file the store removes during
// the walk (eviction, compaction) counts for nothing, as with du.
func diskUsage(t *testing.T, dir string) int64 {
	t.Helper()
	var total int64
	err := filepath.WalkDir(dir, func(path string, _ fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Lstat(path, &st); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		total += st.Blocks * 512
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return total
}

// Filling a store with several times its size in small and medium objects
// keeps du of its directory (files, directories, index and journal) within
// 5% of the size, while open and after Close.
func TestDiskUsageStaysWithinTheSize(t *testing.T) {
	const size = 32 << 20
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: size})
	r := rand.New(rand.NewPCG(1, 2))
	written := 0
	for i := 0; written < 4*size; i++ {
		n := 50 + r.IntN(6000) // small: a page or two
		switch p := r.IntN(1000); {
		case p >= 995:
			n = 1<<20 + r.IntN(1<<20)
		case p >= 900:
			n = 20<<10 + r.IntN(100<<10)
		}
		key := fmt.Sprintf("https://example.com/objects/%d", i)
		mustPut(t, s, key, []byte("some metadata of a response"), body(key, n))
		written += n
		if i%2000 == 0 {
			if du := diskUsage(t, dir); du > size*105/100 {
				t.Fatalf("after %d objects (%d bytes): du %d > 1.05 x %d; Stats %+v", i+1, written, du, size, s.Stats())
			}
		}
	}
	st := s.Stats()
	du := diskUsage(t, dir)
	t.Logf("wrote %d bytes; Stats %+v; du %d (%.3f x size)", written, st, du, float64(du)/size)
	if du > size*105/100 {
		t.Fatalf("du %d > 1.05 x %d; Stats %+v", du, size, st)
	}
	s.Close()
	if du := diskUsage(t, dir); du > size*105/100 {
		t.Fatalf("after Close: du %d > 1.05 x %d", du, size)
	}
}
