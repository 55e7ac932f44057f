package disk

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// childEnv makes the test binary run a child scenario instead of the tests:
// "crash:DIR" or "full:DIR".
const childEnv = "OUTPOST_DISK_TEST_CHILD"

func TestMain(m *testing.M) {
	if mode, dir, ok := strings.Cut(os.Getenv(childEnv), ":"); ok {
		if err := runChild(mode, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runChild(mode, dir string) error {
	switch mode {
	case "crash":
		return crashChild(dir)
	case "full":
		return fullDiskChild(dir)
	}
	return fmt.Errorf("unknown child mode %q", mode)
}

// child starts the test binary on a scenario with stdin and stdout piped.
func child(t *testing.T, mode, dir string) (*exec.Cmd, io.WriteCloser, *bufio.Reader) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), childEnv+"="+mode+":"+dir)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, stdin, bufio.NewReader(stdout)
}

// crashBodies are the committed objects of the crash scenario.
var crashBodies = []struct {
	key, meta string
	size      int
}{
	{"empty", "m0", 0},
	{"small", "m1", 10},
	{"updated in place", "m2", 3000},
	{"updated by copy", "m3", 70_000},
	{"being replaced", "m4", 5000},
	{"big", "m5", 3 << 20},
}

// crashChild commits crashBodies, leaves fills half-written, says "ready",
// then keeps committing loop/N objects and reporting each until killed.
func crashChild(dir string) error {
	s, err := Open(dir, Options{Capacity: 1 << 30})
	if err != nil {
		return err
	}
	for _, c := range crashBodies {
		if err := put(s, c.key, []byte(c.meta), body(c.key, c.size)); err != nil {
			return err
		}
	}
	if err := s.UpdateMeta("updated in place", []byte("new m2")); err != nil {
		return err
	}
	if err := s.UpdateMeta("updated by copy", []byte(strings.Repeat("m3", 2000))); err != nil {
		return err
	}
	for _, key := range []string{"half", "being replaced"} {
		w, err := s.Create(key, []byte("half"), 10_000)
		if err != nil {
			return err
		}
		if _, err := w.Write(body("half", 5000)); err != nil {
			return err
		}
	}
	fmt.Println("ready")
	for i := 0; ; i++ {
		key := fmt.Sprintf("loop/%d", i)
		if err := put(s, key, []byte(key), body(key, loopSize(i))); err != nil {
			return err
		}
		fmt.Println(i)
	}
}

// loopSize makes every fifth loop object big, so the kill may land mid-fill.
func loopSize(i int) int {
	if i%5 == 4 {
		return 2<<20 + i
	}
	return 1000 + i
}

func TestKilledProcessLeavesOnlyCommittedObjects(t *testing.T) {
	dir := t.TempDir()
	cmd, _, out := child(t, "crash", dir)
	lines := make(chan string)
	go func() {
		defer close(lines)
		for {
			line, err := out.ReadString('\n')
			if err != nil {
				return
			}
			lines <- strings.TrimSpace(line)
		}
	}()
	// Kill it a few commits into the loop, mid-fill or mid-commit.
	timeout := time.After(30 * time.Second)
	last := -1
	for last < 20 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatal("child exited early")
			}
			fmt.Sscan(line, &last)
		case <-timeout:
			t.Fatal("child did not get going within 30s")
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s := openStore(t, dir, Options{Capacity: 1 << 30})
	if _, tmp := files(t, dir); len(tmp) != 0 {
		t.Fatalf("tmp/ holds %v after Open", tmp)
	}
	want := map[string]string{"updated in place": "new m2", "updated by copy": strings.Repeat("m3", 2000)}
	for _, c := range crashBodies {
		meta := c.meta
		if m, ok := want[c.key]; ok {
			meta = m
		}
		mustHave(t, s, c.key, []byte(meta), body(c.key, c.size))
	}
	mustMiss(t, s, "half")
	for i := 0; i <= last; i++ {
		key := fmt.Sprintf("loop/%d", i)
		mustHave(t, s, key, []byte(key), body(key, loopSize(i)))
	}
	// Whatever else made it is whole.
	extra := 0
	s.Range(func(key string, meta []byte) bool {
		var i int
		if _, err := fmt.Sscanf(key, "loop/%d", &i); err == nil && i > last {
			mustHave(t, s, key, []byte(key), body(key, loopSize(i)))
			extra++
		}
		return true
	})
	if got, want := s.Stats().Objects, int64(len(crashBodies)+last+1+extra); got != want {
		t.Fatalf("Stats().Objects = %d, want %d", got, want)
	}
}

func TestReopenedStoreServesWhatWasCommitted(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		mustPut(t, s, key, []byte("meta "+key), body(key, 100*i))
	}
	s.Delete("k3")
	before := s.Stats()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	for i := range 20 {
		key := fmt.Sprintf("k%d", i)
		if i == 3 {
			mustMiss(t, s, key)
			continue
		}
		mustHave(t, s, key, []byte("meta "+key), body(key, 100*i))
	}
	after := s.Stats()
	if after.Objects != before.Objects || after.Bytes != before.Bytes {
		t.Fatalf("reopened with %+v, had %+v", after, before)
	}
}

// A store reopened smaller evicts its oldest objects, by the index's
// commit times or, when it has to scan, by the files' modification times.
func TestReopeningSmallerEvictsOldestFirst(t *testing.T) {
	for _, scan := range []bool{false, true} {
		t.Run(fmt.Sprintf("scan=%v", scan), func(t *testing.T) {
			if scan && runtime.GOOS != "linux" {
				t.Skip("file ages are read on Linux only")
			}
			dir := t.TempDir()
			s := openStore(t, dir, Options{Capacity: 1 << 20})
			old := time.Now().Add(-time.Hour)
			defer func() { clock = time.Now }()
			for i := range 10 {
				key := fmt.Sprintf("k%d", i)
				at := old.Add(time.Duration(i) * time.Minute)
				clock = func() time.Time { return at }
				mustPut(t, s, key, nil, body(key, 10_000))
				os.Chtimes(s.path(s.hash(key)), at, at)
			}
			s.Close()
			if scan {
				os.Remove(filepath.Join(dir, "index"))
			}

			size := s.Stats().Bytes / 10
			// Room for 4 after the eighth a tiny store sets aside.
			s = openStore(t, dir, Options{Capacity: 4*size*8/7 + 64})
			settle(s)
			if st := s.Stats(); st.Objects != 4 || st.Bytes > st.Capacity {
				t.Fatalf("reopened at 4 objects' capacity: %+v", st)
			}
			for i := range 10 {
				key := fmt.Sprintf("k%d", i)
				if i < 6 {
					mustMiss(t, s, key)
				} else {
					mustHave(t, s, key, nil, body(key, 10_000))
				}
			}
			if objs, _ := files(t, dir); len(objs) != 4 {
				t.Fatalf("%d object files on disk, want 4", len(objs))
			}
		})
	}
}

func TestLostSeedStartsTheStoreCold(t *testing.T) {
	for _, seed := range []string{"", "short"} {
		dir := t.TempDir()
		s := openStore(t, dir, Options{Capacity: 1 << 20})
		mustPut(t, s, "k", []byte("m"), body("k", 100))
		s.Close()
		os.Remove(filepath.Join(dir, "seed"))
		if seed != "" {
			os.WriteFile(filepath.Join(dir, "seed"), []byte(seed), 0o600)
		}
		s = openStore(t, dir, Options{Capacity: 1 << 20})
		mustMiss(t, s, "k")
		if objs, _ := files(t, dir); len(objs) != 0 || s.Stats().Objects != 0 {
			t.Fatalf("seed %q: %d files and %+v after Open", seed, len(objs), s.Stats())
		}
		mustPut(t, s, "k", []byte("m"), body("k", 100))
		mustHave(t, s, "k", []byte("m"), body("k", 100))
	}
}

func TestDirectoryWithOtherFilesIsRefused(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("mine"), 0o600)
	os.Mkdir(filepath.Join(dir, "tmp"), 0o700)
	os.WriteFile(filepath.Join(dir, "tmp", "precious"), []byte("mine"), 0o600)
	if s, err := Open(dir, Options{Capacity: 1 << 20}); err == nil {
		s.Close()
		t.Fatal("Open of a directory holding other files succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "tmp", "precious")); err != nil {
		t.Fatalf("refused Open touched tmp/: %v", err)
	}
}

// During a zero-downtime upgrade the new process opens the directory while
// the old one still runs and fills.
func TestTwoStoresShareADirectory(t *testing.T) {
	dir := t.TempDir()
	old := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, old, "k", []byte("m"), body("k", 5000))
	w, err := old.Create("filling", []byte("m"), -1)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(body("filling", 5000))

	s, err := open(dir, Options{Capacity: 1 << 20}, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustHave(t, s, "k", []byte("m"), body("k", 5000))
	if err := w.Commit(); err != nil {
		t.Fatalf("the old store's fill failed after the new store opened: %v", err)
	}
	mustHave(t, old, "filling", []byte("m"), body("filling", 5000))
	mustMiss(t, s, "filling") // not in the new store's index yet
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	// Once the old store is gone the new one adopts what it committed.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, _, ok, _ := get(s, "filling"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the new store did not adopt the old one's object within 10s")
		}
	}
	mustHave(t, s, "filling", []byte("m"), body("filling", 5000))
	mustHave(t, s, "k", []byte("m"), body("k", 5000))
	if st := s.Stats(); st.Objects != 2 {
		t.Fatalf("Stats().Objects = %d after adopting, want 2", st.Objects)
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "tmp")); len(entries) != 1 {
		t.Fatalf("tmp/ holds %d entries, want only the open store's directory", len(entries))
	}
}

// damage changes an object file behind the store's back.
var damageTests = []struct {
	name   string
	damage func(t *testing.T, file string)
}{
	{"header byte flipped", func(t *testing.T, file string) { flipByte(t, file, 30) }},
	{"key byte flipped", func(t *testing.T, file string) { flipByte(t, file, fixedLen) }},
	{"body truncated", func(t *testing.T, file string) { truncateBy(t, file, 1) }},
	{"byte appended", func(t *testing.T, file string) { truncateBy(t, file, -1) }},
	{"emptied", func(t *testing.T, file string) { os.Truncate(file, 0) }},
	{"shorter than a header", func(t *testing.T, file string) { os.Truncate(file, fixedLen-1) }},
}

func flipByte(t *testing.T, file string, off int64) {
	f, err := os.OpenFile(file, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	f.ReadAt(b, off)
	b[0] ^= 0x55
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func truncateBy(t *testing.T, file string, n int64) {
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(file, st.Size()-n); err != nil {
		t.Fatal(err)
	}
}

func TestDamagedFilesAreMissesAndDeleted(t *testing.T) {
	for _, tt := range damageTests {
		for _, reopen := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/reopen=%v", tt.name, reopen), func(t *testing.T) {
				dir := t.TempDir()
				s := openStore(t, dir, Options{Capacity: 1 << 20})
				mustPut(t, s, "bad", []byte("m"), body("bad", 5000))
				mustPut(t, s, "good", []byte("m"), body("good", 5000))
				file := s.path(s.hash("bad"))
				tt.damage(t, file)
				if reopen {
					s.Close()
					s = openStore(t, dir, Options{Capacity: 1 << 20})
				}
				mustMiss(t, s, "bad")
				mustHave(t, s, "good", []byte("m"), body("good", 5000))
				if _, err := os.Stat(file); !errors.Is(err, os.ErrNotExist) {
					t.Fatalf("damaged file still there: %v", err)
				}
				if n := s.Stats().Objects; n != 1 {
					t.Fatalf("Stats().Objects = %d, want 1", n)
				}
			})
		}
	}
}

func TestOpenDeletesStrayAndMisplacedFiles(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "a", []byte("m"), body("a", 100))
	mustPut(t, s, "b", []byte("m"), body("b", 100))
	a, b := s.path(s.hash("a")), s.path(s.hash("b"))
	s.Close()
	// b's name now holds a's file (as a collision would), plus junk.
	copyFile(t, a, b)
	junk := filepath.Join(filepath.Dir(a), "junk")
	os.WriteFile(junk, []byte("x"), 0o600)
	os.WriteFile(filepath.Join(dir, "tmp", "fill-1"), []byte("half"), 0o600)

	s = openStore(t, dir, Options{Capacity: 1 << 20})
	settle(s)
	mustHave(t, s, "a", []byte("m"), body("a", 100))
	mustMiss(t, s, "b")
	objs, tmp := files(t, dir)
	if len(objs) != 1 || len(tmp) != 0 {
		t.Fatalf("after Open: objects %v, tmp %v; want only a's file", objs, tmp)
	}
}

func copyFile(t *testing.T, from, to string) {
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Dir(to), 0o700)
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCollidingKeyIsAMissNotTheOtherObject(t *testing.T) {
	s := openStore(t, t.TempDir(), Options{Capacity: 1 << 20})
	mustPut(t, s, "a", []byte("m"), body("a", 100))
	// Pretend "b" hashes like "a": its name holds a's file.
	hb := s.hash("b")
	copyFile(t, s.path(s.hash("a")), s.path(hb))
	s.policy.Insert(hb, 100, func(uint64) {})
	mustMiss(t, s, "b")
	if err := s.UpdateMeta("b", []byte("x")); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateMeta of the colliding key: %v, want ErrNotFound", err)
	}
	mustHave(t, s, "a", []byte("m"), body("a", 100))
}

// With Verify a body that does not match its checksum is dropped on its
// first read after Open, small (read whole with its header) or not; an
// object committed by the running store is not read twice.
func TestVerifyDropsObjectsWithBadBodies(t *testing.T) {
	for _, size := range []int{1000, 5000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, Options{Capacity: 1 << 20})
			mustPut(t, s, "bad", []byte("m"), body("bad", size))
			mustPut(t, s, "good", []byte("m"), body("good", size))
			flipByte(t, s.path(s.hash("bad")), headAlign+100)
			s.Close()

			s = openStore(t, dir, Options{Capacity: 1 << 20}) // headers only
			if _, _, ok, _ := get(s, "bad"); !ok {
				t.Fatal("without Verify a body flip goes unseen; the test needs that")
			}
			s.Close()
			s = openStore(t, dir, Options{Capacity: 1 << 20, Verify: true})
			mustMiss(t, s, "bad")
			mustHave(t, s, "good", []byte("m"), body("good", size))
			if _, err := os.Stat(s.path(s.hash("bad"))); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the bad object's file is still there: %v", err)
			}
			h := s.hash("good")
			if e := s.stripe(h).idx[h]; !e.checked() {
				t.Fatal("a verified object is not marked checked")
			}
		})
	}
}

func TestSyncedStoreRoundTrips(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20, Sync: true})
	mustPut(t, s, "k", []byte("m"), body("k", 1000))
	if err := s.UpdateMeta("k", []byte(strings.Repeat("m", 1000))); err != nil {
		t.Fatal(err)
	}
	mustPut(t, s, "gone", nil, nil)
	if !s.Delete("gone") {
		t.Fatal("Delete reported false")
	}
	s.Close()
	s = openStore(t, dir, Options{Capacity: 1 << 20, Sync: true})
	mustHave(t, s, "k", []byte(strings.Repeat("m", 1000)), body("k", 1000))
	mustMiss(t, s, "gone")
}
