// Package disk is the persistent storage.Store: one file per object under a
// directory, bounded in bytes, kept across restarts and kill -9. It owns the
// files and their format; what the metadata means is the cache's business,
// and which objects to keep is evict's (S3-FIFO).
//
// # Layout
//
//	dir/seed                      16 random bytes keying the file-name hash
//	dir/index                     snapshot of the index (format in index.go)
//	dir/journal-<generation>      changes since the snapshot
//	dir/tmp/store-*/fill-*        fills in progress, one directory per open
//	                              store (flock'ed); Open deletes the others'
//	dir/objects/ab/ab0123456789cdef
//
// An object's file is named by a 64-bit SipHash of its key under the seed, in
// 256 fan-out directories on the hash's first byte. The file holds a header
// (layout in format.go) with the real key, checked on every read so two
// colliding keys never serve each other's bytes, and the metadata, so the
// files alone are the truth: the index only says which hashes have a file
// and how big it is. Earlier versions used two levels (objects/ab/cd/…),
// 65,536 directories whose blocks a small store could not afford; their
// files are moved into place in the background.
//
// # Index
//
// The in-memory index is a map per lock stripe (hash → size, commit time),
// and the eviction policy over it. Every change is appended to the journal
// (24 bytes, checksummed); once the journal outgrows the snapshot it is
// compacted into a new snapshot in the background, and Close writes one
// too. Open reads the snapshot and replays the journal, ignoring a torn
// last record, and serves at once: 10 million entries load in 0.6 s, 1.7 s
// with the longest journal compaction allows (BenchmarkOpenIndex), while
// the policy is fed in the background (tens of seconds at that size).
// Nothing is read from the object files: each is checked on its first read
// like on every read, and a missing or damaged one is dropped from the index
// then (a miss). Without a usable index (none yet, damaged, another seed)
// Open scans every file's header instead, deleting those that fail, and
// writes one. After Open a background sweep adopts the files the index does
// not list (committed just before a crash lost their journal record, or by
// another process sharing the directory) and deletes strays.
//
// # Accounting
//
// Capacity bounds du of the directory. Each object is charged its file's
// length rounded up to the filesystem block, plus entryShare bytes for its
// directory entry and index records; the fan-out directories, the seed and
// the journal's slack are set aside from the capacity up front (a tiny
// store sets aside at most an eighth).
//
// # Reading
//
// Lookup reads the first 4 KiB of the file. When that holds the whole
// object (bodies up to about 3.5 KiB), the file is closed at once and the
// object implements storage.Bytes: four system calls per hit. A bigger
// object keeps its file open, reads with pread, and implements io.WriterTo,
// which sends the body with sendfile when the writer is a TCP connection.
// Each read of a bigger object is followed by an fstat: a file truncated
// (or truncated and regrown with zeros) behind the store's back while it is
// read fails the read instead of serving the wrong bytes.
//
// # Descriptors
//
// A fill's writer keeps its file open after Commit, so that clients
// collapsed onto the fill read the rest with pread. The cache calls
// Release (storage.Releaser) once the last of them has left, which closes
// it; without that call the store closes the oldest once more than 256
// committed writers hold one, so descriptors never wait for the garbage
// collector. A writer whose descriptor is closed still serves ReadAt, from
// the object file by name, as long as that file is the very one it
// committed (same inode); after a replace, delete or eviction the read
// fails rather than return other bytes.
//
// # Crash safety
//
// A fill writes its body to a file in tmp/, the header (with the body's
// length and CRC-32C) on Commit, and renames the file into place, so an
// object appears whole or not at all; its journal record follows the
// rename. Open deletes the fills of stores that are gone. Without
// Options.Sync nothing is fsynced but the snapshot: a killed process loses
// no committed object (the kernel still holds its pages), but a power
// failure may lose recent ones, or leave a body that did not reach the disk
// whole (Options.Verify finds those on their first read). With Sync, Commit
// fsyncs the file before the rename, the directory after it and the journal
// record before the object is visible, and Delete fsyncs the directory and
// its record, so a purge survives a power failure too.
//
// UpdateMeta rewrites the header in place when the new metadata fits the
// slack left after the old (a quarter of its size plus 64 bytes, up to the
// 512-byte boundary where the body starts). The rewrite is one pwrite of a
// checksummed header: a crash that tears it makes the file fail its check at
// the next Open, so the object is dropped, never served with mixed metadata.
// Larger metadata is written with a copy of the body (copy_file_range where
// the kernel has it) to a new file that is renamed over the old one.
//
// # Concurrency
//
// Renames, deletes and in-place header rewrites of a key take a write lock on
// one of 256 stripes chosen by the key's hash; Lookup holds the stripe's read
// lock while it opens the file and reads the header, so it never sees a
// half-rewritten header. An open object keeps reading its file after the
// file is deleted or replaced (Unix semantics of open files). LOCKS.md has
// the lock order.
//
// Two processes may have one directory open at once, as during a
// zero-downtime upgrade: every file checks itself and renames are atomic,
// so neither ever serves wrong bytes, and each keeps its fills in its own
// tmp/ directory. Their indexes are separate, though: while both run, each
// may evict files the other indexed (a miss for the other), and objects the
// old process commits count against neither capacity, so disk use may
// exceed Capacity for a while. Once the stores that were open before it
// have closed (or died), a store adopts the object files it does not know.
package disk

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/evict"
	"github.com/outpost-edge/outpost/storage"
)

// ErrClosed is returned by a store's methods after Close.
var ErrClosed = errors.New("disk: store closed")

// Options configures a disk store.
type Options struct {
	// Capacity bounds the disk space the store takes, in bytes, as du
	// counts it: each object is charged its file's length rounded up to
	// the filesystem's block size plus 160 bytes for its share of the
	// directory and index blocks, and the fan-out directories, the seed
	// and the journal's minimum (about 1.3 MiB with 4 KiB blocks) are set
	// aside from it up front. A store under about 11 MiB sets aside only
	// an eighth, and may then exceed it by a few directory blocks. Fills
	// in progress are not counted. It is required: zero or less is an
	// error.
	Capacity int64
	// MaxObjectSize is the largest body accepted, in bytes; a bigger fill
	// fails with storage.ErrTooLarge. Zero means Capacity/8; more than
	// Capacity means Capacity.
	MaxObjectSize int64
	// Sync fsyncs each object file and its directory, and the journal
	// record, before the object becomes visible (and the directory and
	// journal after a delete), so committed objects and deletes survive a
	// power failure. False (the default, as in nginx's proxy cache and
	// Traffic Server, which leave writes to the page cache) survives a
	// killed process only.
	Sync bool
	// Verify checks the CRC-32C of an object's body the first time it is
	// read after Open (reading the whole body before serving it), and drops
	// the object if it does not match: use it after a power failure
	// without Sync, or on hardware that may return torn writes. False (the
	// default) checks headers, keys and file lengths on every read, and
	// bodies never.
	Verify bool
}

// Store is a persistent storage.Store in a directory. Create it with Open.
type Store struct {
	dir       string
	objDir    string
	tmpDir    string // this store's own directory under tmp/
	capacity  int64
	maxObject int64
	sync      bool
	verify    bool
	block     int64 // filesystem block size; file weights round up to it
	seed      [2]uint64
	lock      *os.File // tmpDir, open and flock'ed while the store is open

	// The index of committed objects is the stripes' maps (hash → entry):
	// a hash is in them exactly when its file is (modulo files being
	// removed right now), and the journal records every change. policy
	// decides what to evict among them; after Open it is filled in the
	// background (load), so it may lag behind the maps for a while.
	policy    *evict.Policy
	stripes   [256]stripe
	count     atomic.Int64 // entries in the maps
	charged   atomic.Int64 // their weights
	journal   journal
	evictions atomic.Int64
	closed    atomic.Bool
	done      chan struct{} // closed by Close, stops the background work
	loaded    chan struct{} // closed once the policy holds the whole index
	swept     chan struct{} // closed once sweep has run
	// background runs feed, sweep and compactions; Close waits for it.
	background sync.WaitGroup
	compacting atomic.Bool
	compactMu  sync.Mutex // one compaction at a time
	// adopted hears of each object adopted (storage.Adopter); nil: no one.
	adopted atomic.Pointer[func(key string, meta []byte) bool]

	// heads pools header read buffers (*[headBuf]byte).
	heads sync.Pool
	// linger bounds the descriptors committed writers keep open.
	linger lingerList
}

type stripe struct {
	sync.RWMutex
	idx map[uint64]entry
	_   [32]byte // one stripe per cache line
}

var (
	_ storage.Store     = (*Store)(nil)
	_ storage.Container = (*Store)(nil)
	_ storage.Adopter   = (*Store)(nil)
)

// headBuf is the size of the first header read; most headers fit.
const headBuf = 4096

// Open opens the store in dir, creating it if needed. It reads the index
// (snapshot and journal) when there is a good one, and otherwise rebuilds
// it from the object files, deleting leftovers of interrupted fills and
// files that do not check out. dir must hold nothing but a store.
func Open(dir string, opts Options) (*Store, error) {
	return open(dir, opts, time.Second)
}

// open is Open with the interval at which a store that shares its directory
// checks whether the other stores have gone (see sweep).
func open(dir string, opts Options, adoptEvery time.Duration) (*Store, error) {
	if opts.Capacity <= 0 {
		return nil, fmt.Errorf("disk: capacity %d: must be positive", opts.Capacity)
	}
	s := &Store{
		dir:       dir,
		objDir:    filepath.Join(dir, "objects"),
		capacity:  opts.Capacity,
		maxObject: opts.MaxObjectSize,
		sync:      opts.Sync,
		verify:    opts.Verify,
		done:      make(chan struct{}),
		loaded:    make(chan struct{}),
		swept:     make(chan struct{}),
		linger:    lingerList{max: maxLinger},
	}
	s.journal.sync = opts.Sync
	if s.maxObject <= 0 {
		s.maxObject = opts.Capacity / 8
	}
	s.maxObject = min(s.maxObject, opts.Capacity)
	s.heads.New = func() any { return new([headBuf]byte) }
	peers, err := s.prepare(dir)
	if err != nil {
		return nil, err
	}
	s.policy = evict.New(opts.Capacity - s.reserve())
	ld, err := s.load(len(peers) == 0)
	if err != nil {
		closeAll(peers)
		s.releaseTmp()
		return nil, err
	}
	s.background.Go(func() { s.feed(ld) })
	s.background.Go(func() { s.sweep(peers, adoptEvery) })
	return s, nil
}

// prepare checks and creates the directories, reads or creates the seed,
// claims a tmp/ directory of the store's own and clears those of stores
// that are gone. It returns the tmp/ directories of stores still open.
func (s *Store) prepare(dir string) ([]*os.File, error) {
	if err := checkOwnDir(dir); err != nil {
		return nil, err
	}
	tmpRoot := filepath.Join(dir, "tmp")
	for _, d := range []string{s.objDir, tmpRoot} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("disk: %w", err)
		}
	}
	s.block = blockSize(s.objDir)
	seed, err := loadSeed(dir, tmpRoot)
	if err != nil {
		return nil, err
	}
	s.seed = seed
	if s.tmpDir, s.lock, err = claimTmp(tmpRoot); err != nil {
		return nil, err
	}
	return clearStaleTmp(tmpRoot, s.tmpDir), nil
}

// reserve is the part of the capacity set aside for what no object is
// charged for: the fan-out directories (created on first use, never
// removed), the store's own directories, the seed and the journal's slack.
// A tiny store (tests) sets aside at most an eighth.
func (s *Store) reserve() int64 {
	r := (fanOut+8)*s.block + journalSlack
	return min(r, s.capacity/8)
}

// fanOut is the number of directories object files are spread over.
const fanOut = 256

// weigh returns the capacity a file of size bytes uses.
func (s *Store) weigh(size int64) int64 { return (size + s.block - 1) / s.block * s.block }

// weight is what an index entry is charged: its file's blocks (its size is
// kept in 4 KiB units, which rounds up to the block on common filesystems)
// and its share of directory and index blocks.
func (s *Store) weight(e entry) int64 { return s.weigh(e.size()) + entryShare }

func (s *Store) hash(key string) uint64 { return sipHash(s.seed[0], s.seed[1], key) }

func (s *Store) stripe(h uint64) *stripe { return &s.stripes[byte(h)] }

const hexDigits = "0123456789abcdef"

// path returns the file name of hash h: objects/ab/ab0123456789cdef.
func (s *Store) path(h uint64) string {
	var b [20]byte
	for i := range 16 {
		b[4+i] = hexDigits[h>>(60-4*i)&0xf]
	}
	b[0], b[3] = '/', '/'
	copy(b[1:3], b[4:6])
	return s.objDir + string(b[:])
}

// getHead and putHead lend a header read buffer.
func (s *Store) getHead() *[headBuf]byte  { return s.heads.Get().(*[headBuf]byte) }
func (s *Store) putHead(b *[headBuf]byte) { s.heads.Put(b) }

// Lookup opens the committed object under key. A file that went missing or
// fails its checks is a miss (ErrNotFound, wrapping the cause), and leaves
// the index.
func (s *Store) Lookup(key string) (storage.Object, error) {
	if s.closed.Load() {
		return nil, ErrClosed
	}
	h := s.hash(key)
	st := s.stripe(h)
	st.RLock()
	e, ok := st.idx[h]
	if !ok {
		st.RUnlock()
		return nil, storage.ErrNotFound
	}
	verify := s.verify && !e.checked()
	o, ino, err := s.openObject(h, key, verify)
	st.RUnlock()
	if err == nil && verify {
		err = s.verifyBody(h, e, o)
	}
	if err != nil {
		s.forget(h, ino, err)
		return nil, fmt.Errorf("%w: %w", storage.ErrNotFound, err)
	}
	s.policy.Touch(h)
	return o, nil
}

// Contains reports whether the index holds key's hash, without opening the
// file (storage.Container); a colliding key or a file removed behind the
// store's back makes it err towards true.
func (s *Store) Contains(key string) bool {
	if s.closed.Load() {
		return false
	}
	h := s.hash(key)
	st := s.stripe(h)
	st.RLock()
	_, ok := st.idx[h]
	st.RUnlock()
	return ok
}

// errOtherKey: the file under a key's hash belongs to a colliding key.
var errOtherKey = errors.New("disk: file holds another key")

// otherKey explains why the file of hash h, whose header is hd, does not
// hold the key looked up: a colliding key's file is left alone, but one
// whose key does not hash to its name is misplaced (copied or renamed
// behind the store's back), and deleted as corrupt.
func (s *Store) otherKey(h uint64, hd header) error {
	if s.hash(string(hd.key)) != h {
		return fmt.Errorf("%w: key does not hash to the file name", errCorrupt)
	}
	return errOtherKey
}

// openObject opens the file of hash h and checks that it holds key. A body
// that fits in the first read along with the header is copied out and the
// file closed at once (four system calls in all); a bigger one is read from
// the open file. It returns the file's inode number when it got that far,
// for forget. With verify, a small body's checksum is checked here, a big
// one's is left to verifyBody.
func (s *Store) openObject(h uint64, key string, verify bool) (storage.Object, uint64, error) {
	name := s.path(h)
	fd, err := openRaw(name)
	if err != nil {
		return nil, 0, err
	}
	buf := s.getHead()
	defer s.putHead(buf)
	hd, st, err := readHeader(fd, buf[:])
	if err == nil && !hd.sameKey(key) {
		err = s.otherKey(h, hd)
	}
	small := err == nil && hd.fileSize() <= headBuf
	if small && verify && crc32.Checksum(buf[hd.bodyOff():hd.fileSize()], castagnoli) != hd.bodyCRC {
		err = fmt.Errorf("%w: body checksum mismatch", errCorrupt)
	}
	if err != nil || small {
		syscall.Close(fd)
	}
	if err != nil {
		return nil, st.Ino, err
	}
	if small {
		return newSmallObject(hd, buf[hd.bodyOff():hd.fileSize()]), st.Ino, nil
	}
	meta := make([]byte, len(hd.meta))
	copy(meta, hd.meta)
	f := os.NewFile(uintptr(fd), name)
	return &fileObject{f: f, fd: fd, meta: meta, off: hd.bodyOff(), size: hd.bodyLen, crc: hd.bodyCRC}, st.Ino, nil
}

// verifyBody checks the body of o, the object of hash h (index entry e), on
// its first read since Open (Options.Verify; openObject checked a small
// one), and marks the entry checked. It runs without the stripe lock: o's
// descriptor pins the version read.
func (s *Store) verifyBody(h uint64, e entry, o storage.Object) error {
	if o, ok := o.(*fileObject); ok {
		if err := checkBody(o.fd, o.off, o.size, o.crc); err != nil {
			o.Close()
			return err
		}
	}
	st := s.stripe(h)
	st.Lock()
	if cur, ok := st.idx[h]; ok && cur == e {
		st.idx[h] = e.withChecked()
	}
	st.Unlock()
	return nil
}

// forget cleans up after a failed open of hash h's file: a missing file
// leaves the index, and a corrupt one (inode ino) is deleted, unless a
// commit replaced it meanwhile. I/O errors and colliding keys leave the
// file alone.
func (s *Store) forget(h, ino uint64, cause error) {
	missing := isMissing(cause)
	if !missing && !errors.Is(cause, errCorrupt) {
		return
	}
	st := s.stripe(h)
	st.Lock()
	defer st.Unlock()
	if missing {
		if _, err := os.Lstat(s.path(h)); isMissing(err) {
			s.drop(st, h)
		}
	} else if s.current(h, ino) {
		os.Remove(s.path(h))
		s.drop(st, h)
	}
}

// isMissing reports whether err says a file is not there, including when a
// directory on its path was replaced by a file.
func isMissing(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// put records in the index that hash h's file is in place (entry e); it
// runs under st, h's stripe lock.
func (s *Store) put(st *stripe, h uint64, e entry) {
	if old, ok := st.idx[h]; ok {
		s.charged.Add(-s.weight(old))
	} else {
		s.count.Add(1)
	}
	st.idx[h] = e
	s.charged.Add(s.weight(e))
	s.record(opInsert, h, e)
}

// drop forgets hash h in the index and the policy once its file is gone;
// it runs under st, h's stripe lock, and reports whether h was indexed.
func (s *Store) drop(st *stripe, h uint64) bool {
	s.policy.Remove(h)
	old, ok := st.idx[h]
	if !ok {
		return false
	}
	delete(st.idx, h)
	s.count.Add(-1)
	s.charged.Add(-s.weight(old))
	s.record(opDelete, h, entry{})
	return true
}

// Delete removes the object under key. It does not read the file to check
// the key: with 64-bit keyed hashes a collision is not a practical concern,
// and deleting a colliding object costs only a miss.
func (s *Store) Delete(key string) bool {
	if s.closed.Load() {
		return false
	}
	h := s.hash(key)
	st := s.stripe(h)
	st.Lock()
	err := os.Remove(s.path(h))
	if s.sync && err == nil {
		syncDir(filepath.Dir(s.path(h)))
	}
	existed := s.drop(st, h)
	st.Unlock()
	return existed && err == nil
}

// evict deletes the files of keys the policy pushed out, unless a commit
// made a key resident again meanwhile.
func (s *Store) evict(keys []uint64) {
	for _, h := range keys {
		st := s.stripe(h)
		st.Lock()
		if !s.policy.Contains(h) {
			os.Remove(s.path(h))
			s.drop(st, h)
		}
		st.Unlock()
		s.evictions.Add(1)
	}
}

// insert makes the file tmp the object of hash h, if the policy admits it
// (a refused object is simply not stored), and deletes what it evicted.
func (s *Store) insert(h uint64, tmp string, size int64) error {
	var evicted []uint64
	st := s.stripe(h)
	st.Lock()
	err := s.place(st, h, tmp, size, true, &evicted)
	st.Unlock()
	s.evict(evicted)
	return err
}

// place runs under st, h's stripe lock.
// checked says whether this process wrote the body (and so computed its
// CRC from the bytes on disk).
func (s *Store) place(st *stripe, h uint64, tmp string, size int64, checked bool, evicted *[]uint64) error {
	if s.closed.Load() {
		os.Remove(tmp)
		return ErrClosed
	}
	dst := s.path(h)
	e := newEntry(size)
	if checked {
		e = e.withChecked()
	}
	if !s.policy.Insert(h, s.weight(e), func(k uint64) { *evicted = append(*evicted, k) }) {
		os.Remove(tmp)
		os.Remove(dst) // the policy dropped any previous version too
		s.drop(st, h)
		return nil
	}
	if err := s.rename(tmp, dst); err != nil {
		os.Remove(tmp)
		os.Remove(dst)
		s.drop(st, h)
		return fmt.Errorf("disk: committing: %w", err)
	}
	s.put(st, h, e)
	return nil
}

// rename moves a finished file into place, creating its fan-out directory
// on first use.
func (s *Store) rename(tmp, dst string) error {
	dir := filepath.Dir(dst)
	// syscall.Rename, not os.Rename: the latter stats dst first.
	err := syscall.Rename(tmp, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if s.sync {
			syncDir(s.objDir)
		}
		err = syscall.Rename(tmp, dst)
	}
	if err == nil && s.sync {
		err = syncDir(dir)
	}
	return err
}

// Stats reports the committed objects and the bytes they are charged.
func (s *Store) Stats() storage.Stats {
	return storage.Stats{
		Objects:   s.count.Load(),
		Bytes:     s.charged.Load(),
		Capacity:  s.capacity,
		Evictions: s.evictions.Load(),
	}
}

// Close writes a snapshot of the index (unless another store shares the
// directory) and removes the store's tmp/ directory. Every commit is
// already on disk; objects still open stay readable, and writers still
// filling fail to commit.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	close(s.done)
	s.background.Wait()
	// Wait out commits and deletes in progress, then drop the fills that
	// can no longer commit.
	for i := range s.stripes {
		s.stripes[i].Lock()
		s.stripes[i].Unlock()
	}
	for _, w := range s.linger.drain() {
		w.f.Close() // its readers go on by name
	}
	s.compact()
	s.journal.mu.Lock()
	if s.journal.f != nil {
		s.journal.f.Close()
		s.journal.f = nil
	}
	s.journal.mu.Unlock()
	return s.releaseTmp()
}

// createTemp creates a file in the store's tmp/ directory, recreating it if
// it was removed
// behind the store's back.
func (s *Store) createTemp(prefix string) (*os.File, error) {
	f, err := os.CreateTemp(s.tmpDir, prefix)
	if errors.Is(err, fs.ErrNotExist) {
		if err = os.MkdirAll(s.tmpDir, 0o700); err == nil {
			f, err = os.CreateTemp(s.tmpDir, prefix)
		}
	}
	return f, err
}
