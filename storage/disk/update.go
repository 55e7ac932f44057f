package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/outpost-edge/outpost/storage"
)

// UpdateMeta replaces the metadata of the object under key. When the new
// metadata fits the object's metadata area it rewrites the header in place
// (one checksummed pwrite, under the key's stripe lock); otherwise it copies
// the body to a new file with a bigger area and renames that over the old
// one. See the package doc for what a crash in either case leaves.
func (s *Store) UpdateMeta(key string, meta []byte) error {
	switch {
	case s.closed.Load():
		return ErrClosed
	case len(meta) > maxMetaLen:
		return fmt.Errorf("disk: %d-byte metadata: %w", len(meta), storage.ErrTooLarge)
	}
	h := s.hash(key)
	buf := s.getHead()
	defer s.putHead(buf)
	st := s.stripe(h)
	st.Lock()
	if _, ok := st.idx[h]; !ok {
		st.Unlock()
		return storage.ErrNotFound
	}
	f, hd, ino, err := s.openRW(h, key, buf[:])
	inPlace := err == nil && len(meta) <= hd.metaCap
	if inPlace {
		err = s.rewriteHeader(st, h, f, hd, meta)
	}
	st.Unlock()
	if f == nil {
		s.forget(h, ino, err)
		if isMissing(err) || errors.Is(err, errCorrupt) || errors.Is(err, errOtherKey) {
			return fmt.Errorf("%w: %w", storage.ErrNotFound, err)
		}
		return fmt.Errorf("disk: updating metadata: %w", err)
	}
	defer f.Close()
	if !inPlace {
		err = s.copyWithMeta(h, f, ino, hd, meta)
	}
	return err
}

// openRW opens hash h's file for an update and checks that it holds key. On
// error f is nil.
func (s *Store) openRW(h uint64, key string, buf []byte) (f *os.File, hd header, ino uint64, err error) {
	f, err = os.OpenFile(s.path(h), os.O_RDWR, 0)
	if err != nil {
		return nil, hd, 0, err
	}
	hd, st, err := readHeader(int(f.Fd()), buf)
	if err == nil && !hd.sameKey(key) {
		err = s.otherKey(h, hd)
	}
	if err != nil {
		f.Close()
		return nil, hd, st.Ino, err
	}
	return f, hd, st.Ino, nil
}

// rewriteHeader writes hd with meta over f's header; it runs under h's
// stripe lock. A failed write may have torn the header, so the object is
// dropped.
func (s *Store) rewriteHeader(st *stripe, h uint64, f *os.File, hd header, meta []byte) error {
	hd.meta = meta
	if _, err := f.WriteAt(hd.appendTo(nil), 0); err != nil {
		os.Remove(s.path(h))
		s.drop(st, h)
		return fmt.Errorf("disk: rewriting header: %w", err)
	}
	if s.sync {
		if err := f.Sync(); err != nil {
			return fmt.Errorf("disk: syncing header: %w", err)
		}
	}
	return nil
}

// errReplaced: the object file changed (was replaced or deleted) while it
// was being copied or read.
var errReplaced = errors.New("disk: object replaced or deleted meanwhile")

// copyWithMeta writes a new file with meta and f's body, and renames it over
// f if f (inode ino) is still the object of hash h.
func (s *Store) copyWithMeta(h uint64, f *os.File, ino uint64, hd header, meta []byte) error {
	nh := newHeader(string(hd.key), meta)
	nh.bodyLen, nh.bodyCRC = hd.bodyLen, hd.bodyCRC
	tmp, err := s.createTemp("meta-")
	if err != nil {
		return fmt.Errorf("disk: updating metadata: %w", err)
	}
	err = s.writeCopy(tmp, nh, f, hd.bodyOff())
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("disk: updating metadata: %w", err)
	}
	var evicted []uint64
	st := s.stripe(h)
	st.Lock()
	if s.current(h, ino) {
		err = s.place(st, h, tmp.Name(), nh.fileSize(), false, &evicted)
	} else {
		os.Remove(tmp.Name())
		err = fmt.Errorf("%w: %w", storage.ErrNotFound, errReplaced)
	}
	st.Unlock()
	s.evict(evicted)
	return err
}

// writeCopy writes header nh to dst, then the body of src found at srcOff;
// os.File.ReadFrom copies it in the kernel (copy_file_range) where it can.
func (s *Store) writeCopy(dst *os.File, nh header, src *os.File, srcOff int64) error {
	if _, err := dst.Write(nh.appendTo(nil)); err != nil {
		return err
	}
	if _, err := dst.Seek(nh.bodyOff(), io.SeekStart); err != nil {
		return err
	}
	if _, err := src.Seek(srcOff, io.SeekStart); err != nil {
		return err
	}
	n, err := dst.ReadFrom(&io.LimitedReader{R: src, N: nh.bodyLen})
	if err == nil && n != nh.bodyLen {
		err = fmt.Errorf("body ends after %d of %d bytes: %w", n, nh.bodyLen, io.ErrUnexpectedEOF)
	}
	if err == nil && s.sync {
		err = dst.Sync()
	}
	return err
}

// current reports whether hash h's file is still inode ino; it runs under
// h's stripe lock.
func (s *Store) current(h, ino uint64) bool {
	var st syscall.Stat_t
	return syscall.Stat(s.path(h), &st) == nil && st.Ino == ino
}
