package disk

import (
	"cmp"
	"encoding/binary"
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

// scan rebuilds the index from the object files when there is no usable
// index, deleting those that fail their checks. It returns the records in
// the order the policy should take them: oldest first, so that a store
// opened with a smaller capacity evicts the oldest.
func (s *Store) scan() (loaded, error) {
	dirs, err := readDirNames(s.objDir)
	if err != nil {
		return loaded{}, fmt.Errorf("disk: %w", err)
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
				part := s.scanDir(d1)
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
	for i := range s.stripes {
		s.stripes[i].idx = make(map[uint64]entry, len(all)/256+8)
	}
	recs := make([]byte, 0, len(all)*snapRec)
	for _, f := range all {
		e := makeEntry(f.size, uint32(f.mtime/1e9))
		s.stripe(f.h).idx[f.h] = e
		recs = binary.LittleEndian.AppendUint64(recs, f.h)
		recs = binary.LittleEndian.AppendUint32(recs, e.units)
		recs = binary.LittleEndian.AppendUint32(recs, e.at)
	}
	return loaded{snap: recs}, nil
}

// scanDir checks the files under objects/d1 and deletes the bad ones. It
// leaves directories of the old two-level layout to sweep.
func (s *Store) scanDir(d1 string) []found {
	var part []found
	buf := s.getHead()
	defer s.putHead(buf)
	walkDir(s.objDir, d1, func(h uint64, name string, ok bool) bool {
		if ok {
			if f, _, err := s.check(h, name, buf[:], false); err == nil {
				part = append(part, f)
				return true
			}
		}
		if !isLegacyDir(name) {
			os.Remove(name)
		}
		return true
	})
	return part
}

// check opens an object file and checks its header, that its key hashes to
// its name and, with verify, its body's checksum. It returns the header
// too, whose key and metadata may point into buf.
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
		if err := checkBody(fd, hd.bodyOff(), hd.bodyLen, hd.bodyCRC); err != nil {
			return found{}, header{}, err
		}
	}
	return found{h: h, size: st.Size, mtime: mtime(&st)}, hd, nil
}

// checkBody compares the CRC-32C of the size-byte body at off in fd with
// crc.
func checkBody(fd int, off, size int64, crc uint32) error {
	p := make([]byte, min(size, 256<<10))
	sum := uint32(0)
	for n := int64(0); n < size; {
		m, err := preadFull(fd, p[:min(int64(len(p)), size-n)], off+n)
		if err != nil {
			return fmt.Errorf("disk: reading body: %w", err)
		}
		if m == 0 {
			return fmt.Errorf("%w: body ends early", errCorrupt)
		}
		sum = crc32.Update(sum, castagnoli, p[:m])
		n += int64(m)
	}
	if sum != crc {
		return fmt.Errorf("%w: body checksum mismatch", errCorrupt)
	}
	return nil
}

// walkObjects calls fn for every entry in the fan-out directories, in name
// order, until fn returns false. ok reports whether the entry's name is
// that of an object file in its right place (h is then its hash).
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
	dir := filepath.Join(objDir, d1)
	names, _ := readDirNames(dir)
	for _, name := range names {
		h, ok := parseName(d1, name)
		if !fn(h, filepath.Join(dir, name), ok) {
			return false
		}
	}
	return true
}

// isLegacyDir reports whether name, found in a fan-out directory, is a
// directory of the two-level layout of earlier versions
// (objects/ab/cd/abcd0123456789ef), which sweep moves files out of.
func isLegacyDir(name string) bool { return isHex(filepath.Base(name), 2) }

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

// parseName returns the hash named by an object file in objects/d1 (or,
// with a legacy directory d1/d2 of the old layout, in it).
func parseName(d1, name string) (uint64, bool) {
	if !isHex(name, 16) || name[:len(d1)] != d1 {
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
