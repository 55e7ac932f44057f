package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// Open trusts the index and checks files lazily: a file damaged or removed
// behind the store's back while it was closed is still indexed after Open,
// and its first Lookup is a miss that drops it (and deletes a damaged one).
func TestOpenReadsTheIndexAndChecksFilesOnFirstRead(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	for _, k := range []string{"good", "corrupt", "missing"} {
		mustPut(t, s, k, []byte("m"), body(k, 5000))
	}
	corrupt, missing := s.path(s.hash("corrupt")), s.path(s.hash("missing"))
	s.Close()
	flipByte(t, corrupt, 30)
	os.Remove(missing)

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	if n := s.Stats().Objects; n != 3 {
		t.Fatalf("Stats().Objects = %d after Open, want the 3 indexed (a scan finds 1)", n)
	}
	mustMiss(t, s, "corrupt")
	mustMiss(t, s, "missing")
	mustHave(t, s, "good", []byte("m"), body("good", 5000))
	if _, err := os.Stat(corrupt); !os.IsNotExist(err) {
		t.Fatalf("damaged file still there after its miss: %v", err)
	}
	if n := s.Stats().Objects; n != 1 || s.Contains("corrupt") || s.Contains("missing") {
		t.Fatalf("Stats().Objects = %d after the misses, want 1", n)
	}
}

// A process killed while appending leaves a torn record at the journal's
// end: Open ignores it, cuts the journal back to its whole records, and
// what is appended next is replayed at the following Open.
func TestTornJournalTailIsIgnored(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "a", nil, body("a", 100))
	s.Close() // snapshot: a
	s = openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "b", nil, body("b", 100))
	mustPut(t, s, "c", nil, body("c", 100))
	j := journalFile(s)
	crash(s)
	truncateBy(t, j, 5) // c's record torn
	// Without their files only the index can know b and c.
	os.Remove(s.path(s.hash("b")))
	os.Remove(s.path(s.hash("c")))

	s, err := Open(dir, Options{Capacity: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	settle(s)
	if !s.Contains("a") || !s.Contains("b") || s.Contains("c") {
		t.Fatalf("after a torn tail: a %v, b %v, c %v; want a and b only", s.Contains("a"), s.Contains("b"), s.Contains("c"))
	}
	if fi, err := os.Stat(j); err != nil || (fi.Size()-journalHead)%journalRec != 0 {
		t.Fatalf("journal not cut back to whole records: %v, %v", fi.Size(), err)
	}
	mustMiss(t, s, "b") // its file is gone: dropped, and journaled
	mustPut(t, s, "d", nil, body("d", 100))
	os.Remove(s.path(s.hash("d")))
	crash(s)

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	if !s.Contains("a") || s.Contains("b") || !s.Contains("d") {
		t.Fatalf("after the second crash: a %v, b %v, d %v; want a and d", s.Contains("a"), s.Contains("b"), s.Contains("d"))
	}
}

// A damaged snapshot is not trusted: Open scans the files instead.
func TestDamagedIndexFallsBackToTheScan(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "a", []byte("m"), body("a", 100))
	mustPut(t, s, "gone", []byte("m"), body("gone", 100))
	os.Remove(s.path(s.hash("gone")))
	s.Close()
	flipByte(t, filepath.Join(dir, "index"), snapHead+3)

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	if n := s.Stats().Objects; n != 1 || s.Contains("gone") {
		t.Fatalf("Stats().Objects = %d, want the 1 file a scan finds", n)
	}
	mustHave(t, s, "a", []byte("m"), body("a", 100))
}

// A committed file the journal did not record (a crash between the rename
// and the append) is adopted by the sweep, so it is neither lost nor left
// on disk uncounted.
func TestUnrecordedFileIsAdopted(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "a", []byte("m"), body("a", 100))
	j := journalFile(s)
	crash(s)
	os.Truncate(j, journalHead) // the record of a is lost

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	settle(s)
	mustHave(t, s, "a", []byte("m"), body("a", 100))
	if n := s.Stats().Objects; n != 1 {
		t.Fatalf("Stats().Objects = %d, want 1", n)
	}
}

// Files of the two-level layout of earlier versions (objects/ab/cd/…) are
// moved into place and served.
func TestOldLayoutIsMigrated(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "a", []byte("m"), body("a", 100))
	name := s.path(s.hash("a"))
	s.Close()
	base := filepath.Base(name)
	legacy := filepath.Join(dir, "objects", base[:2], base[2:4], base)
	os.MkdirAll(filepath.Dir(legacy), 0o700)
	if err := os.Rename(name, legacy); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "index"))

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	settle(s)
	mustHave(t, s, "a", []byte("m"), body("a", 100))
	if _, err := os.Stat(filepath.Dir(legacy)); !os.IsNotExist(err) {
		t.Fatalf("old-layout directory left: %v", err)
	}
}

// writeIndex writes a snapshot of n entries whose files do not exist, plus
// one real object, "hit", and a journal as big as the snapshot (the most
// there is before a compaction) of commits replacing some of them, as a
// store of n objects would leave, for measuring Open.
func writeIndex(t testing.TB, dir string, n int) {
	t.Helper()
	s, err := Open(dir, Options{Capacity: 1 << 40})
	if err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "hit", nil, body("hit", 1000))
	crash(s) // stops the background work: the maps are this function's
	for i := range n {
		h := uint64(i)*0x9e3779b97f4a7c15 + 1
		s.stripe(h).idx[h] = makeEntry(unit, uint32(i))
	}
	removeJournals(dir)
	if err := s.writeSnapshot(1); err != nil {
		t.Fatal(err)
	}
	if err := s.openJournal(1, true); err != nil {
		t.Fatal(err)
	}
	for i := range n * snapRec / journalRec {
		h := uint64(i)*0x9e3779b97f4a7c15 + 1
		s.record(opInsert, h, makeEntry(2*unit, uint32(n+i)))
	}
	s.journal.f.Close()
}

// Open reads 200,000 entries from the index without touching an object
// file: there are none, and the store still lists them all at once.
func TestOpenOfALargeIndexReadsNoObjectFile(t *testing.T) {
	const n = 200_000
	dir := t.TempDir()
	writeIndex(t, dir, n)
	start := time.Now()
	s := openStore(t, dir, Options{Capacity: 1 << 40})
	took := time.Since(start)
	if got := s.Stats().Objects; got != n+1 {
		t.Fatalf("Stats().Objects = %d after Open, want %d", got, n+1)
	}
	t.Logf("Open of %d index entries: %v", n+1, took)
	mustHave(t, s, "hit", nil, body("hit", 1000))
	<-s.loaded
	if got := s.policy.Len(); got != n+1 {
		t.Fatalf("policy holds %d entries once fed, want %d", got, n+1)
	}
}

// BenchmarkOpenIndex measures Open from the index and a first hit, and the
// time until the policy has been fed too, for OUTPOST_DISK_INDEX_ENTRIES
// entries (default 1,000,000).
func BenchmarkOpenIndex(b *testing.B) {
	n := 1_000_000
	if v := os.Getenv("OUTPOST_DISK_INDEX_ENTRIES"); v != "" {
		fmt.Sscan(v, &n)
	}
	dir := b.TempDir()
	writeIndex(b, dir, n)
	runtime.GC() // as in a new process
	var fed time.Duration
	for b.Loop() {
		start := time.Now()
		s, err := Open(dir, Options{Capacity: 1 << 40})
		if err != nil {
			b.Fatal(err)
		}
		mustHave(b, s, "hit", nil, body("hit", 1000))
		b.StopTimer()
		<-s.loaded
		fed += time.Since(start)
		crash(s) // a Close would rewrite the snapshot
		s = nil
		runtime.GC()
		b.StartTimer()
	}
	b.ReportMetric(float64(n), "entries")
	b.ReportMetric(fed.Seconds()/float64(b.N), "s-to-policy-fed")
}
