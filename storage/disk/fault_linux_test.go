package disk

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

func TestReadOnlyDirectoryFailsCreate(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, Options{Capacity: 1 << 20})
	mustPut(t, s, "k", []byte("m"), body("k", 1000))
	makeReadOnly(t, dir)
	if w, err := s.Create("k2", nil, -1); err == nil {
		w.Abort()
		t.Fatal("Create in a read-only directory succeeded")
	}
	mustHave(t, s, "k", []byte("m"), body("k", 1000))
	if err := s.UpdateMeta("k", []byte("x")); err == nil {
		t.Fatal("UpdateMeta in a read-only directory succeeded")
	}
	s.Delete("k") // may fail; must not panic
}

// makeReadOnly makes dir read-only: by mode bits, or for root (whom mode
// bits do not stop) by a read-only bind mount, skipping when neither works.
func makeReadOnly(t *testing.T, dir string) {
	if os.Geteuid() != 0 {
		for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "objects")} {
			os.Chmod(d, 0o500)
		}
		t.Cleanup(func() {
			for _, d := range []string{dir, filepath.Join(dir, "tmp"), filepath.Join(dir, "objects")} {
				os.Chmod(d, 0o700)
			}
		})
		return
	}
	if err := syscall.Mount(dir, dir, "", syscall.MS_BIND, ""); err != nil {
		t.Skipf("root and no bind mount: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	if err := syscall.Mount("", dir, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
		t.Skipf("root and no read-only remount: %v", err)
	}
}

// A real full filesystem, where the test may mount a small tmpfs (root).
func TestFilesystemFullFailsTheFillNotTheStore(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=256k"); err != nil {
		t.Skipf("cannot mount a small tmpfs: %v", err)
	}
	t.Cleanup(func() { syscall.Unmount(dir, syscall.MNT_DETACH) })
	s := openStore(t, dir, Options{Capacity: 64 << 20})
	mustPut(t, s, "before", []byte("m"), body("before", 1000))
	err := put(s, "big", []byte("m"), body("big", 1<<20))
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling past a full filesystem: %v, want ENOSPC", err)
	}
	mustMiss(t, s, "big")
	mustHave(t, s, "before", []byte("m"), body("before", 1000))
	if _, tmp := files(t, dir); len(tmp) != 0 {
		t.Fatalf("failed fill left %v in tmp/", tmp)
	}
	mustPut(t, s, "after", []byte("m"), body("after", 1000)) // the space came back
}
