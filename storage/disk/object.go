package disk

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"

	"github.com/outpost-edge/outpost/storage"
)

// smallObject is an object read whole with its header: its file is already
// closed, so it costs no descriptor while the hit is served.
type smallObject struct {
	meta, body []byte
}

var (
	_ storage.Object = (*smallObject)(nil)
	_ storage.Bytes  = (*smallObject)(nil)
)

// newSmallObject copies meta and body out of the read buffer into one
// allocation.
func newSmallObject(hd header, body []byte) *smallObject {
	b := make([]byte, len(hd.meta)+len(body))
	copy(b, hd.meta)
	copy(b[len(hd.meta):], body)
	return &smallObject{meta: b[:len(hd.meta):len(hd.meta)], body: b[len(hd.meta):]}
}

func (o *smallObject) Meta() []byte  { return o.meta }
func (o *smallObject) Size() int64   { return int64(len(o.body)) }
func (o *smallObject) Bytes() []byte { return o.body }
func (o *smallObject) Close() error  { return nil }

func (o *smallObject) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk: read at negative offset %d", off)
	}
	if off >= int64(len(o.body)) {
		return 0, io.EOF
	}
	n := copy(p, o.body[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// fileObject is an object read from its open file. The descriptor pins the
// version it opened: a later delete or replace does not affect it.
type fileObject struct {
	f    *os.File
	fd   int // f's descriptor, for fstat without allocating
	meta []byte
	off  int64 // where the body starts in the file
	size int64
	crc  uint32 // the body's, from the header (Options.Verify)
}

var (
	_ storage.Object = (*fileObject)(nil)
	_ io.WriterTo    = (*fileObject)(nil)
)

func (o *fileObject) Meta() []byte { return o.meta }
func (o *fileObject) Size() int64  { return o.size }
func (o *fileObject) Close() error { return o.f.Close() }

// ReadAt reads body bytes; reading at or past the end returns io.EOF.
func (o *fileObject) ReadAt(p []byte, off int64) (int, error) {
	n, err := readBody(o.f, p, o.off, off, o.size)
	if err == nil || err == io.EOF {
		if lerr := checkLength(o.fd, o.off+o.size); lerr != nil {
			return 0, lerr
		}
	}
	return n, err
}

// WriteTo writes the whole body to w. When w is a TCP connection (or a
// bufio.Writer with nothing buffered in front of one) the kernel copies the
// file to the socket with sendfile, so a large hit never passes through
// user memory. It moves the file's offset: do not call it concurrently on
// the same object.
func (o *fileObject) WriteTo(w io.Writer) (int64, error) {
	if _, err := o.f.Seek(o.off, io.SeekStart); err != nil {
		return 0, fmt.Errorf("disk: %w", err)
	}
	n, err := io.Copy(w, &io.LimitedReader{R: o.f, N: o.size})
	if err == nil && n < o.size {
		err = fmt.Errorf("disk: body ends early: %w", io.ErrUnexpectedEOF)
	}
	if err == nil {
		err = checkLength(o.fd, o.off+o.size)
	}
	return n, err
}

// checkLength fails when the file of descriptor fd no longer has the
// length its header promised. A file truncated behind the store's back
// while it is read (and perhaps regrown, with zeros) may have returned
// bytes that are not the stored ones; the length after the read tells.
// It costs one fstat per read, next to a pread of up to 32 KiB.
func checkLength(fd int, want int64) error {
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	if st.Size != want {
		return fmt.Errorf("%w: file of %d bytes changed to %d while read", errCorrupt, want, st.Size)
	}
	return nil
}

// readBody reads p from the body that starts at base in f and has length
// size, at body offset off. A body shorter on disk than its header says
// (truncated behind the store's back) is io.ErrUnexpectedEOF.
func readBody(f *os.File, p []byte, base, off, size int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("disk: read at negative offset %d", off)
	}
	if off >= size {
		return 0, io.EOF
	}
	short := int64(len(p)) > size-off
	if short {
		p = p[:size-off]
	}
	n, err := f.ReadAt(p, base+off)
	switch {
	case errors.Is(err, io.EOF):
		return n, fmt.Errorf("disk: body ends early: %w", io.ErrUnexpectedEOF)
	case err != nil:
		return n, fmt.Errorf("disk: reading body: %w", err)
	case short:
		return n, io.EOF
	}
	return n, nil
}
