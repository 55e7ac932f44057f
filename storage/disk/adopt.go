package disk

import (
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
)

// sweep runs in the background after every Open. It waits until the stores
// that had the directory open before this one (a zero-downtime upgrade: the
// old process drains while the new one serves) have closed or died (their
// tmp/ directories are no longer locked), checking every interval; objects
// they committed meanwhile are not in this store's index. Then it walks the
// fan-out directories and adopts the object files the index does not list
// (theirs, and any committed just before a crash that lost the journal
// record), deletes stray files and moves the files of the old two-level
// layout into place. It is owned by the store and stops at Close.
func (s *Store) sweep(peers []*os.File, every time.Duration) {
	defer close(s.swept)
	defer func() { closeAll(peers) }()
	defer func() { recover() }() // sweeping is housekeeping: never crash for it
	if len(peers) > 0 {
		// Once alone, write the snapshot that the other stores kept this
		// one from writing, with what it adopted.
		defer func() {
			if !s.closed.Load() {
				s.compact()
			}
		}()
		t := time.NewTicker(every)
		defer t.Stop()
		for len(peers) > 0 {
			select {
			case <-s.done:
				return
			case <-t.C:
			}
			peers = slices.DeleteFunc(peers, func(d *os.File) bool {
				if syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
					return false
				}
				os.RemoveAll(d.Name())
				d.Close()
				return true
			})
		}
	}
	buf := s.getHead()
	defer s.putHead(buf)
	walkObjects(s.objDir, func(h uint64, name string, ok bool) bool {
		switch {
		case ok:
			s.adoptFile(h, name, buf[:])
		case isLegacyDir(name):
			s.migrate(name, buf[:])
		default:
			os.Remove(name)
		}
		return !s.closed.Load()
	})
}

// migrate moves the object files of a directory of the old layout
// (objects/ab/cd) into place and adopts them, then deletes the directory.
func (s *Store) migrate(dir string, buf []byte) {
	prefix := filepath.Base(filepath.Dir(dir)) + filepath.Base(dir)
	names, _ := readDirNames(dir)
	for _, name := range names {
		if s.closed.Load() {
			return
		}
		old := filepath.Join(dir, name)
		h, ok := parseName(prefix, name)
		if !ok {
			continue
		}
		st := s.stripe(h)
		st.Lock()
		_, known := st.idx[h]
		if !known {
			if err := s.rename(old, s.path(h)); err != nil {
				known = true
			}
		}
		st.Unlock()
		if !known {
			s.adoptFile(h, s.path(h), buf)
		}
	}
	os.RemoveAll(dir)
}

// adoptFile indexes the object file name (hash h) if the store does not
// know it, deleting it if it does not check out, the OnAdopt function or
// the policy refuses it. The stripe lock is held throughout, so Lookup
// finds the object only once OnAdopt has heard of it.
func (s *Store) adoptFile(h uint64, name string, buf []byte) {
	var evicted []uint64
	st := s.stripe(h)
	st.Lock()
	if _, known := st.idx[h]; !known && !s.closed.Load() {
		f, hd, err := s.check(h, name, buf, false)
		e := makeEntry(f.size, uint32(f.mtime/1e9))
		switch {
		case err != nil:
			if !isMissing(err) {
				os.Remove(name)
			}
		case !s.welcome(hd) || !s.policy.Restore(h, s.weight(e), func(k uint64) { evicted = append(evicted, k) }):
			// (An object the policy refuses after OnAdopt indexed it is
			// pruned from that index as any evicted object is.)
			os.Remove(name)
		default:
			s.put(st, h, e)
		}
	}
	st.Unlock()
	s.evict(evicted)
}

// OnAdopt sets the function that hears of each adopted object
// (storage.Adopter).
func (s *Store) OnAdopt(fn func(key string, meta []byte) bool) { s.adopted.Store(&fn) }

// welcome asks the OnAdopt function whether to adopt the object of hd.
func (s *Store) welcome(hd header) bool {
	fn := s.adopted.Load()
	return fn == nil || (*fn)(string(hd.key), hd.meta)
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}
