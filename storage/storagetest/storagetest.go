// Package storagetest is the conformance suite every storage.Store must pass.
// A backend's tests call Run with a constructor; the suite checks the
// behaviour the cache relies on (atomic commit, readers that outlive deletes,
// writers followed while they fill, the byte bound) and runs concurrent
// clients for the race detector. It imports only the standard library and
// storage, so backends share it without sharing code.
package storagetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// Run runs the suite. newStore must return a new, empty store each time it is
// called; the suite closes it when the subtest ends (after cleanups that
// newStore registered, such as t.TempDir, it runs first).
//
// The store's Stats().Capacity must be between 64 KiB and 64 MiB and the
// store must accept objects of Capacity/16 bytes: the bound test writes four
// times the capacity. Beyond the Store interface's own contract, the suite
// requires that:
//   - a Writer's ReadAt keeps working after Commit (clients collapsed onto a
//     fill may still be reading it), and after Release while the object is
//     unchanged, and fails with storage.ErrAborted after Abort;
//   - ReadAt at or past the end of an object returns io.EOF;
//   - an object larger than the capacity is refused with storage.ErrTooLarge
//     from Create, Write or Commit;
//   - Range's callback may Delete the key it is given;
//   - the meta given to Create and UpdateMeta, and the slices given to
//     Write, are not retained: the caller reuses them.
func Run(t *testing.T, newStore func(t *testing.T) storage.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"CommittedObjectReadsBack", testRoundTrip},
		{"ObjectIsInvisibleUntilCommit", testInvisibleUntilCommit},
		{"AbortLeavesNothing", testAbort},
		{"CommitReplacesPreviousObject", testReplace},
		{"WriterIsReadableWhileFilling", testFollowWriter},
		{"CallerBuffersAreNotRetained", testBuffersNotRetained},
		{"UpdateMetaKeepsBody", testUpdateMeta},
		{"DeleteKeepsOpenReadersWorking", testDelete},
		{"RangeVisitsEveryObject", testRange},
		{"RangeCallbackMayDelete", testRangeDelete},
		{"StoreStaysWithinCapacity", testBound},
		{"OversizedObjectIsRefused", testTooLarge},
		{"ConcurrentClientsSeeWholeObjects", testConcurrent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tt.fn(t, s)
		})
	}
}

// pattern returns n bytes that depend on seed, so a read that mixes up two
// objects or offsets is caught.
func pattern(seed string, n int) []byte {
	b := make([]byte, n)
	h := uint32(2166136261)
	for i := range len(seed) {
		h = (h ^ uint32(seed[i])) * 16777619
	}
	for i := range b {
		h ^= h << 13
		h ^= h >> 17
		h ^= h << 5
		b[i] = byte(h)
	}
	return b
}

// put stores body and meta under key, writing in chunks of up to 1000 bytes.
func put(t *testing.T, s storage.Store, key string, meta, body []byte) {
	t.Helper()
	w, err := s.Create(key, meta, int64(len(body)))
	if err != nil {
		t.Fatalf("Create(%q): %v", key, err)
	}
	write(t, w, body)
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit(%q): %v", key, err)
	}
}

func write(t *testing.T, w storage.Writer, body []byte) {
	t.Helper()
	for off := 0; off < len(body); off += 1000 {
		chunk := body[off:min(off+1000, len(body))]
		if n, err := w.Write(chunk); n != len(chunk) || err != nil {
			t.Fatalf("Write at %d: n=%d err=%v", off, n, err)
		}
		if got, want := w.Written(), int64(off+len(chunk)); got != want {
			t.Fatalf("Written() = %d after writing %d bytes", got, want)
		}
	}
}

// readAll reads an object's whole body through ReadAt.
func readAll(o storage.Object) ([]byte, error) {
	return io.ReadAll(io.NewSectionReader(o, 0, o.Size()))
}

// mustLookup opens key and checks its meta and body.
func mustLookup(t *testing.T, s storage.Store, key string, meta, body []byte) storage.Object {
	t.Helper()
	o, err := s.Lookup(key)
	if err != nil {
		t.Fatalf("Lookup(%q): %v", key, err)
	}
	checkObject(t, o, meta, body)
	return o
}

func checkObject(t *testing.T, o storage.Object, meta, body []byte) {
	t.Helper()
	if !bytes.Equal(o.Meta(), meta) {
		t.Fatalf("Meta() = %q, want %q", o.Meta(), meta)
	}
	if o.Size() != int64(len(body)) {
		t.Fatalf("Size() = %d, want %d", o.Size(), len(body))
	}
	got, err := readAll(o)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("body read back differs (%d bytes, err %v), want %d bytes", len(got), err, len(body))
	}
	if b, ok := o.(storage.Bytes); ok && !bytes.Equal(b.Bytes(), body) {
		t.Fatalf("Bytes() differs from the body written")
	}
}

func mustMiss(t *testing.T, s storage.Store, key string) {
	t.Helper()
	o, err := s.Lookup(key)
	if err == nil {
		o.Close()
		t.Fatalf("Lookup(%q) found an object, want ErrNotFound", key)
	}
	if !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("Lookup(%q): %v, want ErrNotFound", key, err)
	}
}

func closeObject(t *testing.T, o storage.Object) {
	t.Helper()
	if err := o.Close(); err != nil {
		t.Fatalf("object Close: %v", err)
	}
}

func rangeKeys(s storage.Store) map[string]string {
	keys := map[string]string{}
	s.Range(func(key string, meta []byte) bool {
		keys[key] = string(meta)
		return true
	})
	return keys
}

var roundTripTests = []struct {
	name     string
	size     int
	sizeHint func(size int) int64
}{
	{"empty body", 0, exactHint},
	{"small body", 10, exactHint},
	{"body in many writes", 10_000, exactHint},
	{"unknown size", 3_000, func(int) int64 { return -1 }},
	{"size hint too small", 3_000, func(int) int64 { return 100 }},
}

func exactHint(size int) int64 { return int64(size) }

func testRoundTrip(t *testing.T, s storage.Store) {
	for i, tt := range roundTripTests {
		key := fmt.Sprintf("round-trip/%d", i)
		meta := []byte("meta " + tt.name)
		body := pattern(key, tt.size)
		w, err := s.Create(key, meta, tt.sizeHint(tt.size))
		if err != nil {
			t.Fatalf("%s: Create: %v", tt.name, err)
		}
		write(t, w, body)
		if err := w.Commit(); err != nil {
			t.Fatalf("%s: Commit: %v", tt.name, err)
		}
		o := mustLookup(t, s, key, meta, body)
		if tt.size >= 10 {
			p := make([]byte, 10)
			n, err := o.ReadAt(p, int64(tt.size-5))
			if n != 5 || !errors.Is(err, io.EOF) || !bytes.Equal(p[:5], body[tt.size-5:]) {
				t.Fatalf("%s: ReadAt across the end: n=%d err=%v, want 5 and io.EOF", tt.name, n, err)
			}
		}
		if n, err := o.ReadAt(make([]byte, 1), int64(tt.size)); n != 0 || !errors.Is(err, io.EOF) {
			t.Fatalf("%s: ReadAt at the end: n=%d err=%v, want 0 and io.EOF", tt.name, n, err)
		}
		closeObject(t, o)
	}
	st := s.Stats()
	if want := int64(len(roundTripTests)); st.Objects != want {
		t.Fatalf("Stats().Objects = %d, want %d", st.Objects, want)
	}
	if st.Bytes <= 0 || st.Bytes > st.Capacity {
		t.Fatalf("Stats().Bytes = %d, want in (0, %d]", st.Bytes, st.Capacity)
	}
}

func testInvisibleUntilCommit(t *testing.T, s storage.Store) {
	w, err := s.Create("k", []byte("m"), 100)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	body := pattern("k", 100)
	write(t, w, body)
	mustMiss(t, s, "k")
	if keys := rangeKeys(s); len(keys) != 0 {
		t.Fatalf("Range lists %v before commit", keys)
	}
	if n := s.Stats().Objects; n != 0 {
		t.Fatalf("Stats().Objects = %d before commit", n)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	closeObject(t, mustLookup(t, s, "k", []byte("m"), body))
}

func testAbort(t *testing.T, s storage.Store) {
	old := pattern("old", 50)
	put(t, s, "kept", []byte("old"), old)

	for _, key := range []string{"new", "kept"} {
		w, err := s.Create(key, []byte("aborted"), -1)
		if err != nil {
			t.Fatalf("Create(%q): %v", key, err)
		}
		write(t, w, pattern("aborted", 3000))
		w.Abort()
		if _, err := w.ReadAt(make([]byte, 10), 0); !errors.Is(err, storage.ErrAborted) {
			t.Fatalf("ReadAt of an aborted writer: %v, want ErrAborted", err)
		}
	}
	mustMiss(t, s, "new")
	closeObject(t, mustLookup(t, s, "kept", []byte("old"), old))
	if keys := rangeKeys(s); len(keys) != 1 {
		t.Fatalf("Range lists %v after aborts, want only kept", keys)
	}
	if n := s.Stats().Objects; n != 1 {
		t.Fatalf("Stats().Objects = %d, want 1", n)
	}
}

func testReplace(t *testing.T, s storage.Store) {
	v1, v2 := pattern("v1", 2000), pattern("v2", 1500)
	put(t, s, "k", []byte("v1"), v1)
	o1 := mustLookup(t, s, "k", []byte("v1"), v1)

	w, err := s.Create("k", []byte("v2"), int64(len(v2)))
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	write(t, w, v2)
	closeObject(t, mustLookup(t, s, "k", []byte("v1"), v1)) // still the old one
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	closeObject(t, mustLookup(t, s, "k", []byte("v2"), v2))
	checkObject(t, o1, []byte("v1"), v1) // an open reader keeps its version
	closeObject(t, o1)
	if n := s.Stats().Objects; n != 1 {
		t.Fatalf("Stats().Objects = %d after replace, want 1", n)
	}
}

func testFollowWriter(t *testing.T, s storage.Store) {
	const chunk = 1024
	body := pattern("fill", int(s.Stats().Capacity/16/chunk*chunk))
	w, err := s.Create("fill", []byte("m"), -1)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	done := make(chan error, 1)
	go func() {
		for off := 0; off < len(body); off += chunk {
			if _, err := w.Write(body[off : off+chunk]); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	// Follow the fill as a collapsed client does: read what is written.
	p := make([]byte, len(body))
	var read int64
	deadline := time.Now().Add(time.Minute)
	for read < int64(len(body)) {
		if time.Now().After(deadline) {
			t.Fatalf("writer stalled at %d of %d bytes", read, len(body))
		}
		n := w.Written()
		if n < read || n > int64(len(body)) {
			t.Fatalf("Written() = %d after %d", n, read)
		}
		if n == read {
			select {
			case err := <-done:
				if err != nil {
					t.Fatalf("Write: %v", err)
				}
				done <- nil
			default:
				runtime.Gosched()
			}
			continue
		}
		if m, err := w.ReadAt(p[read:n], read); int64(m) != n-read || err != nil && err != io.EOF {
			t.Fatalf("ReadAt(%d bytes at %d): n=%d err=%v", n-read, read, m, err)
		}
		if !bytes.Equal(p[read:n], body[read:n]) {
			t.Fatalf("bytes %d..%d read from the writer differ", read, n)
		}
		read = n
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	q := make([]byte, 100)
	if n, err := w.ReadAt(q, 1000); n != 100 || err != nil && err != io.EOF || !bytes.Equal(q, body[1000:1100]) {
		t.Fatalf("ReadAt of a committed writer: n=%d err=%v", n, err)
	}
	if r, ok := w.(storage.Releaser); ok { // a reader that attached late still reads
		r.Release()
		if n, err := w.ReadAt(q, 2000); n != 100 || err != nil && err != io.EOF || !bytes.Equal(q, body[2000:2100]) {
			t.Fatalf("ReadAt of a released writer: n=%d err=%v", n, err)
		}
	}
	closeObject(t, mustLookup(t, s, "fill", []byte("m"), body))
}

// testBuffersNotRetained reuses the meta and Write buffers after each call,
// as the cache does with its pooled buffers.
func testBuffersNotRetained(t *testing.T, s storage.Store) {
	meta := []byte("meta")
	body := pattern("k", 3000)
	w, err := s.Create("k", meta, -1)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	copy(meta, "XXXX")
	buf := make([]byte, 1000)
	for off := 0; off < len(body); off += len(buf) {
		copy(buf, body[off:])
		if _, err := w.Write(buf); err != nil {
			t.Fatalf("Write: %v", err)
		}
		clear(buf)
	}
	if err := w.Commit(); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	closeObject(t, mustLookup(t, s, "k", []byte("meta"), body))
	meta = []byte("new meta")
	if err := s.UpdateMeta("k", meta); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	copy(meta, "XXXXXXXX")
	closeObject(t, mustLookup(t, s, "k", []byte("new meta"), body))
}

func testUpdateMeta(t *testing.T, s storage.Store) {
	body := pattern("k", 500)
	put(t, s, "k", []byte("old meta"), body)
	if err := s.UpdateMeta("k", []byte("new, longer meta")); err != nil {
		t.Fatalf("UpdateMeta: %v", err)
	}
	closeObject(t, mustLookup(t, s, "k", []byte("new, longer meta"), body))
	if got := rangeKeys(s)["k"]; got != "new, longer meta" {
		t.Fatalf("Range meta = %q after UpdateMeta", got)
	}
	if err := s.UpdateMeta("missing", []byte("x")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateMeta of a missing key: %v, want ErrNotFound", err)
	}
	mustMiss(t, s, "missing")
}

func testDelete(t *testing.T, s storage.Store) {
	body := pattern("k", 5000)
	put(t, s, "k", []byte("m"), body)
	put(t, s, "other", []byte("m"), body)
	o := mustLookup(t, s, "k", []byte("m"), body)
	if !s.Delete("k") {
		t.Fatal("Delete of a stored object reported false")
	}
	if s.Delete("k") {
		t.Fatal("second Delete reported true")
	}
	if s.Delete("never") {
		t.Fatal("Delete of a missing key reported true")
	}
	mustMiss(t, s, "k")
	checkObject(t, o, []byte("m"), body) // still readable until closed
	closeObject(t, o)
	closeObject(t, mustLookup(t, s, "other", []byte("m"), body))
	if n := s.Stats().Objects; n != 1 {
		t.Fatalf("Stats().Objects = %d after delete, want 1", n)
	}
}

func testRange(t *testing.T, s storage.Store) {
	want := map[string]string{}
	for i := range 20 {
		key := fmt.Sprintf("range/%d", i)
		want[key] = "meta " + key
		put(t, s, key, []byte(want[key]), pattern(key, 100+i))
	}
	got := rangeKeys(s)
	if len(got) != len(want) {
		t.Fatalf("Range visited %d objects, want %d", len(got), len(want))
	}
	for k, m := range want {
		if got[k] != m {
			t.Fatalf("Range gave %q meta %q, want %q", k, got[k], m)
		}
	}
	calls := 0
	s.Range(func(string, []byte) bool { calls++; return false })
	if calls != 1 {
		t.Fatalf("Range called fn %d times after it returned false, want 1", calls)
	}
}

func testRangeDelete(t *testing.T, s storage.Store) {
	for i := range 10 {
		key := fmt.Sprintf("purge/%d", i)
		put(t, s, key, []byte("m"), pattern(key, 100))
	}
	deleted := 0
	s.Range(func(key string, _ []byte) bool {
		if s.Delete(key) {
			deleted++
		}
		return true
	})
	if deleted != 10 {
		t.Fatalf("deleted %d objects from Range, want 10", deleted)
	}
	if st := s.Stats(); st.Objects != 0 || st.Bytes != 0 {
		t.Fatalf("after purging all: Stats().Objects = %d, Bytes = %d, want 0", st.Objects, st.Bytes)
	}
}

func testBound(t *testing.T, s storage.Store) {
	capacity := s.Stats().Capacity
	if capacity < 64<<10 || capacity > 64<<20 {
		t.Fatalf("Stats().Capacity = %d, the suite needs 64 KiB to 64 MiB", capacity)
	}
	size := int(capacity / 32)
	first := pattern("bound/0", size)
	put(t, s, "bound/0", []byte("m"), first)
	open := mustLookup(t, s, "bound/0", []byte("m"), first)
	const objects = 128 // four times the capacity
	for i := 1; i < objects; i++ {
		key := fmt.Sprintf("bound/%d", i)
		put(t, s, key, []byte("m"), pattern(key, size))
		if st := s.Stats(); st.Bytes > st.Capacity {
			t.Fatalf("after %d objects: Stats().Bytes = %d > Capacity %d", i+1, st.Bytes, st.Capacity)
		}
	}
	st := s.Stats()
	if st.Evictions == 0 || st.Objects >= objects {
		t.Fatalf("wrote %d times the capacity: Objects=%d Evictions=%d", objects/32, st.Objects, st.Evictions)
	}
	found := 0
	for i := range objects {
		key := fmt.Sprintf("bound/%d", i)
		if o, err := s.Lookup(key); err == nil {
			checkObject(t, o, []byte("m"), pattern(key, size))
			closeObject(t, o)
			found++
		}
	}
	if int64(found) != st.Objects || len(rangeKeys(s)) != found {
		t.Fatalf("Lookup finds %d objects, Range %d, Stats %d", found, len(rangeKeys(s)), st.Objects)
	}
	checkObject(t, open, []byte("m"), first) // readable even if evicted
	closeObject(t, open)
}

func testTooLarge(t *testing.T, s storage.Store) {
	size := s.Stats().Capacity + 1
	for _, hint := range []int64{size, -1} {
		err := writeLarge(s, "large", size, hint)
		if !errors.Is(err, storage.ErrTooLarge) {
			t.Fatalf("object of capacity+1 bytes (size hint %d): %v, want ErrTooLarge", hint, err)
		}
		mustMiss(t, s, "large")
	}
}

// writeLarge writes a size-byte object and returns the first error, from
// Create, Write or Commit. After a Write error it checks that Commit fails.
func writeLarge(s storage.Store, key string, size, hint int64) error {
	w, err := s.Create(key, nil, hint)
	if err != nil {
		return err
	}
	chunk := make([]byte, 64<<10)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := w.Write(chunk[:min(int64(len(chunk)), size-off)]); err != nil {
			if w.Commit() == nil {
				return fmt.Errorf("commit after write error %w succeeded", err)
			}
			return err
		}
	}
	return w.Commit()
}

// testConcurrent runs writers, readers, deleters and meta updates on a few
// keys at once. Every body starts and ends with its version, from which the
// rest derives, so a reader detects a torn, truncated or mixed object.
func testConcurrent(t *testing.T, s storage.Store) {
	const keys, rounds, workers = 8, 200, 4
	var wg sync.WaitGroup
	for g := range workers {
		wg.Go(func() { // writers
			for i := range rounds {
				key := fmt.Sprintf("c/%d", (g+i)%keys)
				version := fmt.Sprintf("%s#%d.%d", key, g, i)
				body := append([]byte(version+"|"), pattern(version, 500+i)...)
				body = append(body, "|"+version...)
				w, err := s.Create(key, []byte(key), -1)
				if err != nil {
					t.Errorf("Create: %v", err)
					return
				}
				w.Write(body[:100])
				w.Write(body[100:])
				if i%10 == 0 {
					w.Abort()
				} else if err := w.Commit(); err != nil {
					t.Errorf("Commit: %v", err)
					return
				}
			}
		})
		wg.Go(func() { // readers
			for i := range rounds * 2 {
				key := fmt.Sprintf("c/%d", (g*3+i)%keys)
				if err := checkVersioned(s, key); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Go(func() { // deletes, meta updates, listing
		for i := range rounds {
			key := fmt.Sprintf("c/%d", i%keys)
			switch i % 3 {
			case 0:
				s.Delete(key)
			case 1:
				if err := s.UpdateMeta(key, []byte(key)); err != nil && !errors.Is(err, storage.ErrNotFound) {
					t.Errorf("UpdateMeta: %v", err)
				}
			case 2:
				s.Range(func(string, []byte) bool { return true })
				if st := s.Stats(); st.Bytes > st.Capacity {
					t.Errorf("Stats().Bytes = %d > Capacity %d", st.Bytes, st.Capacity)
				}
			}
		}
	})
	wg.Wait()
	// The counters must agree with what is left once it is all deleted.
	for i := range keys {
		s.Delete(fmt.Sprintf("c/%d", i))
	}
	if st := s.Stats(); st.Objects != 0 || st.Bytes != 0 {
		t.Fatalf("after deleting every key: Stats().Objects = %d, Bytes = %d, want 0", st.Objects, st.Bytes)
	}
}

func checkVersioned(s storage.Store, key string) error {
	o, err := s.Lookup(key)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("Lookup(%q): %w", key, err)
	}
	defer o.Close()
	if string(o.Meta()) != key {
		return fmt.Errorf("Lookup(%q) returned meta %q", key, o.Meta())
	}
	body, err := readAll(o)
	if err != nil {
		return fmt.Errorf("reading %q: %w", key, err)
	}
	version, rest, _ := bytes.Cut(body, []byte("|"))
	rest, ok := bytes.CutSuffix(rest, append([]byte("|"), version...))
	if !ok || !bytes.HasPrefix(version, []byte(key+"#")) || !bytes.Equal(rest, pattern(string(version), len(rest))) {
		return fmt.Errorf("Lookup(%q) returned a torn or foreign body (%d bytes)", key, len(body))
	}
	return nil
}
