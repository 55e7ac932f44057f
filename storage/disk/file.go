package disk

import (
	"fmt"
	"io/fs"
	"syscall"
)

// openRaw opens name read-only as a bare descriptor: the small-object path
// of Lookup needs only fstat, one pread and close, and an os.File would add
// a poller registration attempt and a finaliser.
func openRaw(name string) (int, error) {
	for {
		fd, err := syscall.Open(name, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err == nil {
			return fd, nil
		}
		if err != syscall.EINTR {
			return -1, &fs.PathError{Op: "open", Path: name, Err: err}
		}
	}
}

// preadFull reads len(p) bytes at off, or fewer at the end of the file.
func preadFull(fd int, p []byte, off int64) (int, error) {
	n := 0
	for n < len(p) {
		m, err := syscall.Pread(fd, p[n:], off+int64(n))
		switch {
		case err == syscall.EINTR:
			continue
		case err != nil:
			return n, err
		case m == 0:
			return n, nil
		}
		n += m
	}
	return n, nil
}

// readHeader reads and checks the header of the object file fd into buf, or
// into a new buffer if it does not fit; the header aliases that buffer. It
// also returns the file's status.
func readHeader(fd int, buf []byte) (header, syscall.Stat_t, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return header{}, st, fmt.Errorf("disk: %w", err)
	}
	hd, need, n, err := readParse(fd, buf)
	if err == nil && need > len(buf) {
		if int64(need) > st.Size {
			return header{}, st, fmt.Errorf("%w: header of %d bytes in a %d-byte file", errCorrupt, need, st.Size)
		}
		hd, _, _, err = readParse(fd, make([]byte, need))
	}
	switch {
	case err != nil:
	case hd.fileSize() != st.Size:
		err = fmt.Errorf("%w: length %d, header says %d", errCorrupt, st.Size, hd.fileSize())
	case need <= len(buf) && int64(n) < min(int64(len(buf)), st.Size):
		// Truncated between fstat and pread: the rest of buf is not this
		// file's, and a small object's body would be taken from it.
		err = fmt.Errorf("%w: read %d bytes of a %d-byte file", errCorrupt, n, st.Size)
	}
	return hd, st, err
}

// readParse reads the start of fd into buf and parses it, returning how
// many bytes it read. need > len(buf) asks for a bigger buffer; a header
// that does not fit a file's length is corrupt.
func readParse(fd int, buf []byte) (hd header, need, n int, err error) {
	n, err = preadFull(fd, buf, 0)
	if err != nil {
		return header{}, 0, n, fmt.Errorf("disk: reading header: %w", err)
	}
	hd, need, err = parseHeader(buf[:n])
	if err == nil && need > n && n < len(buf) {
		err = fmt.Errorf("%w: %d-byte file, header needs %d", errCorrupt, n, need)
	}
	return hd, need, n, err
}

// readHeaderFile reads the header of the file name into buf (see readHeader).
func readHeaderFile(name string, buf []byte) (header, error) {
	fd, err := openRaw(name)
	if err != nil {
		return header{}, err
	}
	defer syscall.Close(fd)
	hd, _, err := readHeader(fd, buf)
	return hd, err
}
