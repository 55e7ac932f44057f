package disk

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
)

// load fills the index maps from the snapshot and journal, or by scanning
// the object files when they are missing or damaged, and opens the journal
// for appending. alone says no other store has the directory open.
func (s *Store) load(alone bool) (loaded, error) {
	ld, gen, err := s.loadIndex()
	if err == nil {
		s.tally()
		return ld, s.openJournal(gen, alone)
	}
	if !errors.Is(err, errNoIndex) {
		return loaded{}, err
	}
	if ld, err = s.scan(); err != nil {
		return loaded{}, err
	}
	// Start a new index: forget the unusable one, journal from generation
	// 1 and write the first snapshot in the background.
	os.Remove(filepath.Join(s.dir, "index"))
	removeJournals(s.dir)
	s.tally()
	if err := s.openJournal(0, alone); err != nil {
		return loaded{}, err
	}
	s.compacting.Store(true)
	s.background.Go(func() {
		defer s.compacting.Store(false)
		s.compact()
	})
	return ld, nil
}

// tally sets the count and charge of the freshly loaded maps.
func (s *Store) tally() {
	for i := range s.stripes {
		for _, e := range s.stripes[i].idx {
			s.count.Add(1)
			s.charged.Add(s.weight(e))
		}
	}
}

// feed hands the loaded index to the policy, in commit order, while the
// store already serves from the maps: a restart serves hits once the maps
// are built, without waiting for the policy. An entry replaced, deleted or
// already inserted since Open is skipped; one the policy refuses (the store
// was reopened smaller) is deleted. Until it is done the policy knows only
// part of the objects, so commits made meanwhile may take the disk over
// capacity for that long; the last entries fed evict what is over.
func (s *Store) feed(ld loaded) {
	defer close(s.loaded)
	const rec = snapRec
	for _, part := range []struct {
		b    []byte
		step int
	}{{ld.snap, rec}, {ld.journal, journalRec}} {
		for r := part.b; len(r) >= part.step; r = r[part.step:] {
			if s.closed.Load() {
				return
			}
			if part.step == journalRec && binary.LittleEndian.Uint32(r[16:]) != opInsert {
				continue
			}
			h := binary.LittleEndian.Uint64(r)
			s.feedOne(h, decodeEntry(r))
		}
	}
}

// feedOne restores hash h into the policy if its index entry is still
// want: the object is already on disk, so the policy's second-hit rule for
// heavy newcomers does not apply.
func (s *Store) feedOne(h uint64, want entry) {
	var evicted []uint64
	st := s.stripe(h)
	st.Lock()
	if e, ok := st.idx[h]; ok && e.sameFile(want) && !s.policy.Contains(h) {
		if !s.policy.Restore(h, s.weight(e), func(k uint64) { evicted = append(evicted, k) }) {
			os.Remove(s.path(h))
			s.drop(st, h)
		}
	}
	st.Unlock()
	s.evict(evicted)
}
