package disk

import (
	"cmp"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
)

// scanWorkers bounds the goroutines that read headers at Open: enough to
// keep a disk's queue busy, few enough not to matter on a small machine.
const scanWorkers = 8

// found is an object file that checked out at Open.
type found struct {
	h     uint64
	size  int64
	mtime int64
}

// load rebuilds the index from the object files, deleting those that fail
// their checks. Files enter the policy oldest first, so that a store opened
// with a smaller capacity evicts the oldest.
func (s *Store) load(verify bool) error {
	dirs, err := readDirNames(s.objDir)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	jobs := make(chan string)
	var (
		mu  sync.Mutex
		all []found
		wg  sync.WaitGroup
	)
	for range scanWorkers {
		wg.Go(func() {
			for d1 := range jobs {
				part := s.scanDir(d1, verify)
				mu.Lock()
				all = append(all, part...)
				mu.Unlock()
			}
		})
	}
	for _, d1 := range dirs {
		jobs <- d1
	}
	close(jobs)
	wg.Wait()

	slices.SortFunc(all, func(a, b found) int { return cmp.Compare(a.mtime, b.mtime) })
	var evicted []uint64
	for _, f := range all {
		if !s.policy.Restore(f.h, s.weigh(f.size), func(k uint64) { evicted = append(evicted, k) }) {
			os.Remove(s.path(f.h))
		}
	}
	s.evict(evicted)
	return nil
}

// scanDir checks the files under objects/d1 and deletes the bad ones.
func (s *Store) scanDir(d1 string, verify bool) []found {
	var part []found
	buf := s.getHead()
	defer s.putHead(buf)
	walkDir(s.objDir, d1, func(h uint64, name string, ok bool) bool {
		if ok {
			if f, _, err := s.check(h, name, buf[:], verify); err == nil {
				part = append(part, f)
				return true
			}
		}
		os.Remove(name)
		return true
	})
	return part
}

// check opens an object file found at Open and checks its header, that its
// key hashes to its name and, with verify, its body's checksum. It returns
// the header too, whose key and metadata may point into buf.
func (s *Store) check(h uint64, name string, buf []byte, verify bool) (found, header, error) {
	fd, err := openRaw(name)
	if err != nil {
		return found{}, header{}, err
	}
	defer syscall.Close(fd)
	hd, st, err := readHeader(fd, buf)
	if err != nil {
		return found{}, header{}, err
	}
	if s.hash(string(hd.key)) != h {
		return found{}, header{}, fmt.Errorf("%w: key does not hash to the file name", errCorrupt)
	}
	if verify {
		if err := checkBody(fd, hd); err != nil {
			return found{}, header{}, err
		}
	}
	return found{h: h, size: st.Size, mtime: mtime(&st)}, hd, nil
}

// checkBody compares the CRC-32C of the body in fd with its header's.
func checkBody(fd int, hd header) error {
	p := make([]byte, 256<<10)
	crc := uint32(0)
	for off := int64(0); off < hd.bodyLen; {
		n, err := preadFull(fd, p[:min(int64(len(p)), hd.bodyLen-off)], hd.bodyOff()+off)
		if err != nil {
			return fmt.Errorf("disk: reading body: %w", err)
		}
		if n == 0 {
			return fmt.Errorf("%w: body ends early", errCorrupt)
		}
		crc = crc32.Update(crc, castagnoli, p[:n])
		off += int64(n)
	}
	if crc != hd.bodyCRC {
		return fmt.Errorf("%w: body checksum mismatch", errCorrupt)
	}
	return nil
}

// walkObjects calls fn for every file in the fan-out directories, in name
// order, until fn returns false. ok reports whether the file's name is that
// of an object file in its right place (h is then its hash).
func walkObjects(objDir string, fn func(h uint64, name string, ok bool) bool) {
	dirs, _ := readDirNames(objDir)
	for _, d1 := range dirs {
		if !walkDir(objDir, d1, fn) {
			return
		}
	}
}

// walkDir walks objects/d1; it reports false when fn stopped it.
func walkDir(objDir, d1 string, fn func(h uint64, name string, ok bool) bool) bool {
	if !isHex(d1, 2) {
		return true
	}
	dirs, _ := readDirNames(filepath.Join(objDir, d1))
	for _, d2 := range dirs {
		if !isHex(d2, 2) {
			continue
		}
		dir := filepath.Join(objDir, d1, d2)
		names, _ := readDirNames(dir)
		for _, name := range names {
			h, ok := parseName(d1, d2, name)
			if !fn(h, filepath.Join(dir, name), ok) {
				return false
			}
		}
	}
	return true
}

func readDirNames(dir string) ([]string, error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	slices.Sort(names)
	return names, err
}

// parseName returns the hash named by an object file in objects/d1/d2.
func parseName(d1, d2, name string) (uint64, bool) {
	if !isHex(name, 16) || name[:2] != d1 || name[2:4] != d2 {
		return 0, false
	}
	var h uint64
	for i := range len(name) {
		c := name[i]
		if c >= 'a' {
			c -= 'a' - 10
		} else {
			c -= '0'
		}
		h = h<<4 | uint64(c)
	}
	return h, true
}

// isHex reports whether s is n lowercase hex digits, as path writes them.
func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := range len(s) {
		if (s[i] < '0' || s[i] > '9') && (s[i] < 'a' || s[i] > 'f') {
			return false
		}
	}
	return true
}
