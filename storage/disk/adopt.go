package disk

import (
	"os"
	"slices"
	"syscall"
	"time"
)

// adopt runs when the store opened a directory that other stores still had
// open (a zero-downtime upgrade: the old process drains while the new one
// serves). Objects those stores commit meanwhile are not in this store's
// index, so once every one of them has closed or died (its tmp/ directory
// is no longer locked) adopt indexes the object files it does not know and
// deletes the dead stores' fills. It checks every interval, is owned by the
// store and stops at Close.
func (s *Store) adopt(peers []*os.File, every time.Duration) {
	defer func() { closeAll(peers) }()
	defer func() { recover() }() // adoption is an optimisation: never crash for it
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
	buf := s.getHead()
	defer s.putHead(buf)
	walkObjects(s.objDir, func(h uint64, name string, ok bool) bool {
		if ok {
			s.adoptFile(h, name, buf[:])
		}
		return !s.closed.Load()
	})
}

// adoptFile indexes the object file name (hash h) if the store does not
// know it, deleting it if it does not check out, the OnAdopt function or
// the policy refuses it. The stripe lock is held throughout, so Lookup
// finds the object only once OnAdopt has heard of it.
func (s *Store) adoptFile(h uint64, name string, buf []byte) {
	var evicted []uint64
	st := s.stripe(h)
	st.Lock()
	if !s.policy.Contains(h) && !s.closed.Load() {
		switch f, hd, err := s.check(h, name, buf, false); {
		case err != nil:
			if !isMissing(err) {
				os.Remove(name)
			}
		case !s.welcome(hd) || !s.policy.Restore(h, s.weigh(f.size), func(k uint64) { evicted = append(evicted, k) }):
			// (An object the policy refuses after OnAdopt indexed it is
			// pruned from that index as any evicted object is.)
			os.Remove(name)
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
