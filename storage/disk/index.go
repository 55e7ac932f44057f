package disk

import (
	"bufio"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The index is what Open reads instead of every object's header: a snapshot
// of the committed objects (dir/index) and a journal of the changes since
// (dir/journal-<generation>). Both only say which hashes have a file and
// how big it is; the file itself is checked on every read, so an index that
// is behind the files costs misses (a missing file is dropped from it at its
// first Lookup), never wrong bytes, and the sweep adopts files it does not
// list. Integers are little-endian.
//
// Snapshot:
//
//	0   8  magic "OPINDEX1"
//	8   8  generation
//	16  8  seed check (sipHash of "index" under the store's seed)
//	24  8  record count
//	32  16 per record: hash, size in 4 KiB units, commit time (Unix seconds)
//	end 4  CRC-32C of everything before it
//
// Journal: a 24-byte header (magic "OPJRNL01", generation, seed check), then
// 24-byte records: hash, size in units, commit time, op (1 insert, 2 delete),
// CRC-32C of the 20 bytes before it. Replay stops at the first record that
// does not check out, so a torn tail is ignored.
const (
	snapMagic    = "OPINDEX1"
	journalMagic = "OPJRNL01"
	snapHead     = 32
	snapRec      = 16
	journalHead  = 24
	journalRec   = 24
	opInsert     = 1
	opDelete     = 2
	unit         = 4096 // sizes are recorded in these

	// entryShare is what each object is charged beyond its file's blocks:
	// its directory entry (24 bytes, in htree blocks about half full: 48),
	// its snapshot record twice (the old and the new one while compacting:
	// 32) and the journal the compaction threshold allows per object (16,
	// twice while compacting), with room to spare.
	entryShare = 160
	// journalSlack is the journal size the compaction threshold allows on
	// top of the snapshot's size, so that small stores do not compact on
	// every commit. A journal is compacted once it outgrows the snapshot:
	// Open then never replays more records than the snapshot holds.
	journalSlack = 256 << 10
)

// entry is an index record in memory, 8 bytes so that a map slot takes 16:
// an object file's size in units, whose top bit says its body has been
// verified (Options.Verify) since the store opened, and when it was
// committed (Unix seconds), the order the policy is loaded in.
type entry struct {
	units uint32
	at    uint32
}

const checkedBit = 1 << 31

func makeEntry(size int64, at uint32) entry {
	return entry{units: uint32((size + unit - 1) / unit), at: at}
}

func newEntry(size int64) entry { return makeEntry(size, uint32(clock().Unix())) }

// decodeEntry reads the size and time of a snapshot or journal record.
func decodeEntry(r []byte) entry {
	return entry{units: binary.LittleEndian.Uint32(r[8:]) &^ checkedBit, at: binary.LittleEndian.Uint32(r[12:])}
}

func (e entry) size() int64           { return int64(e.units&^checkedBit) * unit }
func (e entry) checked() bool         { return e.units&checkedBit != 0 }
func (e entry) withChecked() entry    { e.units |= checkedBit; return e }
func (e entry) sameFile(o entry) bool { return e.size() == o.size() && e.at == o.at }

// clock tells commit times; tests set it to age objects.
var clock = time.Now

// journal appends index records to dir/journal-<gen>. Lock order: after
// the stripes.
type journal struct {
	mu     sync.Mutex
	f      *os.File // nil when the index is off (see broken)
	gen    uint64
	size   int64
	sync   bool
	broken bool // a write failed: the index files are deleted and no longer kept
	buf    [journalRec]byte
}

func journalName(dir string, gen uint64) string {
	return filepath.Join(dir, "journal-"+strconv.FormatUint(gen, 10))
}

// seedCheck ties the index files to the seed: after the seed is lost the
// hashes in them name nothing.
func (s *Store) seedCheck() uint64 { return s.hash("index") }

// record appends one change to the journal. A failed write deletes the
// index files, so the next Open scans the objects instead of trusting an
// index that misses changes.
func (s *Store) record(op uint32, h uint64, e entry) {
	j := &s.journal
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil {
		return
	}
	b := j.buf[:]
	binary.LittleEndian.PutUint64(b, h)
	binary.LittleEndian.PutUint32(b[8:], e.units&^checkedBit)
	binary.LittleEndian.PutUint32(b[12:], e.at)
	binary.LittleEndian.PutUint32(b[16:], op)
	binary.LittleEndian.PutUint32(b[20:], crc32.Checksum(b[:20], castagnoli))
	_, err := j.f.Write(b)
	if err == nil && j.sync {
		err = syscall.Fdatasync(int(j.f.Fd()))
	}
	if err != nil {
		s.dropIndexLocked()
		return
	}
	j.size += journalRec
	if j.size > journalSlack+snapRec*s.count.Load() && !s.closed.Load() && s.compacting.CompareAndSwap(false, true) {
		s.background.Go(func() {
			defer s.compacting.Store(false)
			if !s.closed.Load() { // Close compacts itself
				s.compact()
			}
		})
	}
}

// dropIndexLocked stops journaling and deletes the index files; it runs
// under the journal's lock.
func (s *Store) dropIndexLocked() {
	j := &s.journal
	j.broken = true
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	os.Remove(filepath.Join(s.dir, "index"))
	removeJournals(s.dir)
}

// removeJournals deletes every journal in dir.
func removeJournals(dir string) {
	names, _ := readDirNames(dir)
	for _, name := range names {
		if _, ok := journalGen(name); ok {
			os.Remove(filepath.Join(dir, name))
		}
	}
}

// journalGen returns the generation of the journal named name.
func journalGen(name string) (uint64, bool) {
	rest, ok := strings.CutPrefix(name, "journal-")
	if !ok {
		return 0, false
	}
	g, err := strconv.ParseUint(rest, 10, 64)
	return g, err == nil
}

// loaded is what loadIndex read: the records in the order the policy should
// take them (snapshot then journal).
type loaded struct {
	snap    []byte // snapshot records
	journal []byte // journal records, inserts and deletes
}

// errNoIndex: the index is missing or does not check out; Open scans.
var errNoIndex = errors.New("disk: no usable index")

// loadIndex reads the snapshot and replays the journals into the stripes'
// maps. It returns the generation to append to.
func (s *Store) loadIndex() (loaded, uint64, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, "index"))
	if err != nil {
		return loaded{}, 0, fmt.Errorf("%w: %w", errNoIndex, err)
	}
	if len(b) < snapHead+4 || string(b[:8]) != snapMagic ||
		binary.LittleEndian.Uint64(b[16:]) != s.seedCheck() ||
		crc32.Checksum(b[:len(b)-4], castagnoli) != binary.LittleEndian.Uint32(b[len(b)-4:]) {
		return loaded{}, 0, fmt.Errorf("%w: snapshot damaged", errNoIndex)
	}
	gen := binary.LittleEndian.Uint64(b[8:])
	n := binary.LittleEndian.Uint64(b[24:])
	recs := b[snapHead : len(b)-4]
	if uint64(len(recs)) != n*snapRec {
		return loaded{}, 0, fmt.Errorf("%w: snapshot length", errNoIndex)
	}
	s.fill(recs)
	// A compaction that crashed after switching journals left records in
	// the next generation's journal too; they come after this one's.
	var journal []byte
	for g := gen; g <= gen+1; g++ {
		journal = s.replay(journalName(s.dir, g), g, journal)
	}
	return loaded{snap: recs, journal: journal}, gen, nil
}

// fill builds the stripes' maps from snapshot records.
func (s *Store) fill(recs []byte) {
	s.byStripe(recs, snapRec, func(st *stripe, part []byte) {
		m := make(map[uint64]entry, len(part)/snapRec)
		for r := part; len(r) > 0; r = r[snapRec:] {
			m[binary.LittleEndian.Uint64(r)] = decodeEntry(r)
		}
		st.idx = m
	})
}

// byStripe calls fn for each stripe with the records of recs (each size
// bytes, starting with a hash) that belong to it, in their order, stripes in
// parallel. Grouping the records first (a stripe is a hash's low byte, a
// record's first) lets each map be filled while it is in the cache: random
// inserts into 256 maps of 10 million entries would miss it on each.
func (s *Store) byStripe(recs []byte, size int, fn func(st *stripe, part []byte)) {
	var start [257]int
	for r := recs; len(r) >= size; r = r[size:] {
		start[int(r[0])+1] += size
	}
	for i := range 256 {
		start[i+1] += start[i]
	}
	grouped := make([]byte, start[256])
	next := start
	for r := recs; len(r) >= size; r = r[size:] {
		next[r[0]] += copy(grouped[next[r[0]]:], r[:size])
	}
	var (
		stripe atomic.Int32
		wg     sync.WaitGroup
	)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := int(stripe.Add(1)) - 1; i < 256; i = int(stripe.Add(1)) - 1 {
				fn(&s.stripes[i], grouped[start[i]:start[i+1]])
			}
		})
	}
	wg.Wait()
}

// replay applies the journal name (generation gen) to the maps and appends
// its intact records to journal. A missing or foreign journal is empty.
func (s *Store) replay(name string, gen uint64, journal []byte) []byte {
	b, err := os.ReadFile(name)
	if err != nil || len(b) < journalHead || string(b[:8]) != journalMagic ||
		binary.LittleEndian.Uint64(b[8:]) != gen || binary.LittleEndian.Uint64(b[16:]) != s.seedCheck() {
		return journal
	}
	end := journalHead
	for ; end+journalRec <= len(b) && intact(b[end:end+journalRec]); end += journalRec {
	}
	recs := b[journalHead:end] // a torn tail is left out
	s.byStripe(recs, journalRec, func(st *stripe, part []byte) {
		for r := part; len(r) > 0; r = r[journalRec:] {
			h := binary.LittleEndian.Uint64(r)
			switch binary.LittleEndian.Uint32(r[16:]) {
			case opInsert:
				st.idx[h] = decodeEntry(r)
			case opDelete:
				delete(st.idx, h)
			}
		}
	})
	return append(journal, recs...)
}

// intact reports whether a journal record's checksum matches.
func intact(r []byte) bool {
	return crc32.Checksum(r[:20], castagnoli) == binary.LittleEndian.Uint32(r[20:])
}

// openJournal starts appending to the journal of generation gen, creating
// it with its header if needed. A journal whose tail is torn is cut back to
// its last whole record when no other store is appending to it.
func (s *Store) openJournal(gen uint64, alone bool) error {
	name := journalName(s.dir, gen)
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("disk: journal: %w", err)
	}
	size, err := s.journalEnd(f, gen)
	if err == nil && alone {
		err = f.Truncate(size)
	}
	if err == nil && size == 0 {
		_, err = f.Write(s.journalHeader(gen))
		size = journalHead
	}
	if err != nil {
		f.Close()
		return fmt.Errorf("disk: journal: %w", err)
	}
	j := &s.journal
	j.mu.Lock()
	j.f, j.gen, j.size = f, gen, size
	j.mu.Unlock()
	return nil
}

// journalEnd returns the length of f's intact records (0 for a journal to
// start afresh).
func (s *Store) journalEnd(f *os.File, gen uint64) (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	b := make([]byte, fi.Size())
	if _, err := f.ReadAt(b, 0); err != nil && len(b) > 0 {
		return 0, err
	}
	if len(b) < journalHead || string(b[:journalHead]) != string(s.journalHeader(gen)) {
		return 0, nil
	}
	end := journalHead
	for ; end+journalRec <= len(b) && intact(b[end:end+journalRec]); end += journalRec {
	}
	return int64(end), nil
}

func (s *Store) journalHeader(gen uint64) []byte {
	b := append([]byte(journalMagic), make([]byte, 16)...)
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint64(b[16:], s.seedCheck())
	return b
}

// compact writes a snapshot of the index and starts a new journal. Changes
// made while it runs go to the new journal, which replays them over
// whatever state of theirs the snapshot caught (records are idempotent). It
// does nothing while another store shares the directory: that one may be
// appending to the journal too.
func (s *Store) compact() {
	s.compactMu.Lock()
	defer s.compactMu.Unlock()
	if s.othersAlive() {
		return
	}
	j := &s.journal
	j.mu.Lock()
	if j.broken && s.closed.Load() {
		// Close rebuilds a dropped index: the maps are complete.
		j.broken = false
	} else if j.broken || (s.closed.Load() && j.size == journalHead) {
		j.mu.Unlock()
		return // nothing to compact
	}
	old := j.gen
	gen := old + 1
	f, err := os.OpenFile(journalName(s.dir, gen), os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err == nil {
		_, err = f.Write(s.journalHeader(gen))
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		s.dropIndexLocked()
		j.mu.Unlock()
		return
	}
	if j.f != nil {
		j.f.Close()
	}
	j.f, j.gen, j.size = f, gen, journalHead
	j.mu.Unlock()

	if err := s.writeSnapshot(gen); err != nil {
		j.mu.Lock()
		s.dropIndexLocked()
		j.mu.Unlock()
		return
	}
	os.Remove(journalName(s.dir, old))
}

// writeSnapshot writes the index maps, oldest commit first, to dir/index
// through a temporary file.
func (s *Store) writeSnapshot(gen uint64) error {
	type rec struct {
		h     uint64
		units uint32
		at    uint32
	}
	var recs []rec
	for i := range s.stripes {
		st := &s.stripes[i]
		st.RLock()
		for h, e := range st.idx {
			recs = append(recs, rec{h, e.units &^ checkedBit, e.at})
		}
		st.RUnlock()
	}
	slices.SortFunc(recs, func(a, b rec) int { return cmp.Compare(a.at, b.at) })
	tmp := filepath.Join(s.dir, "index.tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	w := bufio.NewWriterSize(f, 256<<10)
	b := make([]byte, snapHead)
	copy(b, snapMagic)
	binary.LittleEndian.PutUint64(b[8:], gen)
	binary.LittleEndian.PutUint64(b[16:], s.seedCheck())
	binary.LittleEndian.PutUint64(b[24:], uint64(len(recs)))
	crc := crc32.Checksum(b, castagnoli)
	w.Write(b)
	for _, r := range recs {
		b = binary.LittleEndian.AppendUint64(b[:0], r.h)
		b = binary.LittleEndian.AppendUint32(b, r.units)
		b = binary.LittleEndian.AppendUint32(b, r.at)
		crc = crc32.Update(crc, castagnoli, b)
		w.Write(b)
	}
	w.Write(binary.LittleEndian.AppendUint32(b[:0], crc))
	err = w.Flush()
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, "index"))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	return err
}

// othersAlive reports whether another open store holds a tmp/ directory
// here.
func (s *Store) othersAlive() bool {
	tmpRoot := filepath.Dir(s.tmpDir)
	names, _ := readDirNames(tmpRoot)
	for _, name := range names {
		path := filepath.Join(tmpRoot, name)
		if path == s.tmpDir {
			continue
		}
		d, err := os.Open(path)
		if err != nil {
			continue
		}
		err = syscall.Flock(int(d.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
		d.Close()
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return true
		}
	}
	return false
}
