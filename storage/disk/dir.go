package disk

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// storeNames are the entries a store keeps in its directory (and its
// journal-<generation> files), plus the lost+found of a filesystem given
// whole to the store.
var storeNames = map[string]bool{"seed": true, "tmp": true, "objects": true, "index": true, "index.tmp": true, "lost+found": true}

// checkOwnDir refuses a directory holding anything but a store's entries:
// Open deletes what it does not recognise under tmp/ and objects/, so a
// store pointed at a shared directory by mistake must not start.
func checkOwnDir(dir string) error {
	names, err := readDirNames(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	for _, name := range names {
		if _, journal := journalGen(name); !storeNames[name] && !journal {
			return fmt.Errorf("disk: %s holds %q, which is not the store's: give the store a directory of its own", dir, name)
		}
	}
	return nil
}

// blockSize returns the block size of the filesystem holding dir, or 4096
// when it cannot tell.
func blockSize(dir string) int64 {
	var st syscall.Statfs_t
	if syscall.Statfs(dir, &st) != nil || int64(st.Bsize) <= 0 {
		return 4096
	}
	return int64(st.Bsize)
}

// loadSeed returns the hash key stored in dir/seed, creating it on first
// use or when it is damaged. A store whose seed is lost finds no object
// under its expected name and deletes them all at Open: the cache starts
// cold, never wrong.
func loadSeed(dir, tmpRoot string) ([2]uint64, error) {
	name := filepath.Join(dir, "seed")
	for range 2 {
		b, err := os.ReadFile(name)
		if err == nil && len(b) == 16 {
			return [2]uint64{binary.LittleEndian.Uint64(b), binary.LittleEndian.Uint64(b[8:])}, nil
		}
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return [2]uint64{}, fmt.Errorf("disk: seed: %w", err)
		}
		if err := writeSeed(name, tmpRoot, err == nil); err != nil {
			return [2]uint64{}, fmt.Errorf("disk: seed: %w", err)
		}
	}
	return [2]uint64{}, fmt.Errorf("disk: seed %s keeps changing", name)
}

// writeSeed writes a new random seed to name, durably. A missing seed is
// created with link, so of two stores opening a new directory at once one
// wins and both read its seed; a damaged one is replaced.
func writeSeed(name, tmpRoot string, replace bool) error {
	f, err := os.CreateTemp(tmpRoot, "seed-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	seed := make([]byte, 16)
	rand.Read(seed)
	_, err = f.Write(seed)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	switch {
	case err != nil:
	case replace:
		err = os.Rename(f.Name(), name)
	default:
		if err = os.Link(f.Name(), name); errors.Is(err, fs.ErrExist) {
			err = nil
		}
	}
	if err == nil {
		err = syncDir(filepath.Dir(name))
	}
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	d.Close()
	return err
}

// claimTmp creates a directory of the store's own under tmpRoot for its
// fills and holds an exclusive flock on it while the store is open: two
// stores may share a directory during a zero-downtime upgrade, and the one
// opening must not delete the other's fills. The kernel drops the lock
// when the process dies, so a kill -9 leaves the directory to the next Open.
func claimTmp(tmpRoot string) (string, *os.File, error) {
	dir, err := os.MkdirTemp(tmpRoot, "store-")
	if err != nil {
		return "", nil, fmt.Errorf("disk: %w", err)
	}
	d, err := os.Open(dir)
	if err == nil {
		if err = syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			d.Close()
		}
	}
	if err != nil {
		os.Remove(dir)
		return "", nil, fmt.Errorf("disk: locking %s: %w", dir, err)
	}
	return dir, d, nil
}

// clearStaleTmp deletes what tmp/ holds of stores that are gone: loose
// files and directories no live store has locked. It returns the
// directories of live stores other than own, open.
func clearStaleTmp(tmpRoot, own string) []*os.File {
	var live []*os.File
	names, _ := readDirNames(tmpRoot)
	for _, name := range names {
		path := filepath.Join(tmpRoot, name)
		if path == own {
			continue
		}
		d, err := os.Open(path)
		if err != nil {
			continue
		}
		if syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
			live = append(live, d)
			continue
		}
		os.RemoveAll(path)
		d.Close()
	}
	return live
}

// releaseTmp deletes the store's tmp/ directory and drops its lock.
func (s *Store) releaseTmp() error {
	err := os.RemoveAll(s.tmpDir)
	if cerr := s.lock.Close(); err == nil {
		err = cerr
	}
	return err
}
