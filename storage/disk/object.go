package disk

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/outpost-edge/outpost/storage"
)

// object is a committed object opened for reading. Its file descriptor pins
// the version it opened: a later delete or replace does not affect it.
type object struct {
	f    *os.File
	meta []byte
	off  int64 // where the body starts in the file
	size int64
}

var _ storage.Object = (*object)(nil)

func (o *object) Meta() []byte { return o.meta }
func (o *object) Size() int64  { return o.size }
func (o *object) Close() error { return o.f.Close() }

// ReadAt reads body bytes; reading at or past the end returns io.EOF.
func (o *object) ReadAt(p []byte, off int64) (int, error) {
	return readBody(o.f, p, o.off, off, o.size)
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
