package testorigin

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sync"
)

// The pattern is a 64 KiB block of pseudo-random bytes, rotated by a
// different amount in each 64 KiB block of the stream, so that a byte that
// arrives at the wrong offset (lost, duplicated or reordered data) is caught,
// while producing it is a memory copy.
const (
	blockBits = 16
	blockSize = 1 << blockBits
	blockMask = blockSize - 1
	rotation  = 7919 // prime, so successive blocks start at different points
)

var patternBlock = sync.OnceValue(func() *[blockSize]byte {
	var b [blockSize]byte
	x := uint64(0x9E3779B97F4A7C15)
	for i := range b {
		x ^= x << 13 // xorshift64
		x ^= x >> 7
		x ^= x << 17
		b[i] = byte(x >> 32)
	}
	return &b
})

// FillPattern fills p with the pattern bytes starting at stream offset off.
func FillPattern(p []byte, off int64) {
	block := patternBlock()
	for len(p) > 0 {
		start := (int(off&blockMask) + int(off>>blockBits)*rotation) & blockMask
		n := min(len(p), blockSize-int(off&blockMask), blockSize-start)
		copy(p[:n], block[start:start+n])
		p, off = p[n:], off+int64(n)
	}
}

// Pattern is an io.ReadSeeker over size bytes of the pattern, holding none
// of them in memory. It suits http.ServeContent, which adds Range support.
type Pattern struct {
	size, off int64
}

// NewPattern returns a reader of the first size bytes of the pattern.
func NewPattern(size int64) *Pattern { return &Pattern{size: size} }

// Read implements io.Reader.
func (r *Pattern) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	FillPattern(p, r.off)
	r.off += int64(len(p))
	return len(p), nil
}

// Seek implements io.Seeker.
func (r *Pattern) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return r.off, errors.New("testorigin: bad whence")
	}
	if offset < 0 {
		return r.off, errors.New("testorigin: seek before start")
	}
	r.off = offset
	return offset, nil
}

// CheckPattern reads r to the end and reports the first byte that differs
// from the pattern starting at offset off, or a length other than n.
func CheckPattern(r io.Reader, off, n int64) error {
	got := make([]byte, 32<<10)
	want := make([]byte, len(got))
	var seen int64
	for {
		k, err := r.Read(got)
		if k > 0 {
			FillPattern(want[:k], off+seen)
			if !bytes.Equal(got[:k], want[:k]) {
				return firstDifference(got[:k], want[:k], seen)
			}
			seen += int64(k)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("testorigin: after %d bytes: %w", seen, err)
		}
	}
	if seen != n {
		return fmt.Errorf("testorigin: body is %d bytes, want %d", seen, n)
	}
	return nil
}

func firstDifference(got, want []byte, base int64) error {
	i := 0
	for got[i] == want[i] {
		i++
	}
	return fmt.Errorf("testorigin: body byte %d is %#x, want %#x", base+int64(i), got[i], want[i])
}
