package transform

import (
	"bytes"
	"io"
)

// Replacement is one find-and-replace pair.
type Replacement struct {
	Find, With []byte
}

// replaceReader rewrites src as it is read, replacing every occurrence of
// each Find with its With, leftmost first (the longest Find when several
// start at one place). It holds at most one read of the source plus the
// longest Find less one byte, which may be the start of a match the next
// read completes.
type replaceReader struct {
	src     io.ReadCloser
	pairs   []Replacement
	longest int
	buf     []byte // source bytes not yet decided on
	out     []byte // output not yet handed out
	off     int    // of out, handed out already
	err     error  // the source's end or failure, once met
	chunk   []byte
}

func newReplaceReader(src io.ReadCloser, pairs []Replacement) *replaceReader {
	r := &replaceReader{src: src, pairs: pairs, chunk: make([]byte, 32<<10)}
	for _, p := range pairs {
		r.longest = max(r.longest, len(p.Find))
	}
	return r
}

// Ready reports whether output is waiting (proxy.ReadyBody). The
// source's bytes being here is not enough: they may all fall in the tail
// held back for a match, and Read then waits for more.
func (r *replaceReader) Ready() bool {
	return r.off < len(r.out) || r.err != nil
}

func (r *replaceReader) Read(p []byte) (int, error) {
	for r.off == len(r.out) {
		r.out, r.off = r.out[:0], 0
		if r.err != nil && len(r.buf) == 0 {
			return 0, r.err
		}
		if r.err == nil {
			n, err := r.src.Read(r.chunk)
			r.buf = append(r.buf, r.chunk[:n]...)
			r.err = err
		}
		r.process(r.err != nil)
	}
	n := copy(p, r.out[r.off:])
	r.off += n
	return n, nil
}

// process moves what can be decided from buf to out: text before and
// including each match whose every rival is fully in view, and, at the
// end, all of it; otherwise all but the tail a match could start in.
func (r *replaceReader) process(end bool) {
	for {
		at, pair := r.match()
		if at >= 0 && (end || at+r.longest <= len(r.buf)) {
			r.out = append(r.out, r.buf[:at]...)
			r.out = append(r.out, pair.With...)
			r.buf = r.buf[:copy(r.buf, r.buf[at+len(pair.Find):])]
			continue
		}
		safe := len(r.buf)
		if !end {
			safe = max(0, len(r.buf)-(r.longest-1))
		}
		r.out = append(r.out, r.buf[:safe]...)
		r.buf = r.buf[:copy(r.buf, r.buf[safe:])]
		return
	}
}

// match returns the leftmost match in buf, the longest Find of those
// starting there; -1 for none.
func (r *replaceReader) match() (int, *Replacement) {
	at, best := -1, (*Replacement)(nil)
	for i := range r.pairs {
		p := &r.pairs[i]
		j := bytes.Index(r.buf, p.Find)
		if j >= 0 && (at < 0 || j < at || j == at && len(p.Find) > len(best.Find)) {
			at, best = j, p
		}
	}
	return at, best
}

func (r *replaceReader) Close() error { return r.src.Close() }
