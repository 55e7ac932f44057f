package cache

import (
	"bytes"
	"io"
	"math/rand/v2"
	"strconv"

	"github.com/outpost-edge/outpost/httphead"
)

// This file answers Range requests from what is stored (RFC 9110 section
// 14): one range, several (multipart/byteranges, section 14.6), suffix
// ranges ("bytes=-N"), open ranges ("bytes=N-") and unsatisfiable ones
// (416 with "Content-Range: bytes */size"). A single range of a whole
// object is served by serveObject without allocating; the rest build a
// rangeBody over the stored bytes.

// maxRanges bounds the ranges one request may ask for; a longer list is
// ignored and the whole body is sent (RFC 9110 section 14.2 allows it),
// so that a request cannot make the cache send thousands of tiny parts.
const maxRanges = 32

// byteRange is [start, end) of a body.
type byteRange struct{ start, end int64 }

// eachSpec calls fn for each range-spec of a "bytes=" Range value:
// first and last as written (last -1 when open), or suffix with last the
// suffix length. ok is false when the value is malformed, or not in
// bytes: the field is then ignored (RFC 9110 section 14.2).
func eachSpec(v []byte, fn func(first, last int64, suffix bool)) (ok bool) {
	v = httphead.TrimOWS(v)
	if len(v) < 7 || !httphead.EqualFold(v[:6], "bytes=") {
		return false
	}
	ok, n := true, 0
	forEachToken(v[6:], func(spec []byte) {
		dash := bytes.IndexByte(spec, '-')
		if !ok || dash < 0 {
			ok = false
			return
		}
		n++
		first, last := spec[:dash], spec[dash+1:]
		if len(first) == 0 {
			s, good := digits(last)
			ok = good
			fn(0, s, true)
			return
		}
		f, good := digits(first)
		l := int64(-1)
		if len(last) > 0 {
			l, ok = digits(last)
			ok = ok && l >= f
		}
		ok = ok && good
		fn(f, l, false)
	})
	return ok && n > 0
}

// specRange resolves one range-spec against a body of size bytes; sat is
// false when it selects nothing.
func specRange(first, last int64, suffix bool, size int64) (r byteRange, sat bool) {
	if suffix {
		if last == 0 || size == 0 {
			return r, false
		}
		return byteRange{max(size-last, 0), size}, true
	}
	if first >= size {
		return r, false
	}
	end := size
	if last >= 0 {
		end = min(last+1, size)
	}
	return byteRange{first, end}, true
}

// parseRanges resolves a Range value against a body of size bytes. ok is
// false when the field must be ignored (malformed, another unit, more
// than maxRanges); otherwise rs holds the satisfiable ranges in the order
// asked, overlapping ones merged into the first (section 14.2 allows
// coalescing), and an empty rs means 416.
func parseRanges(v []byte, size int64) (rs []byteRange, ok bool) {
	count := 0
	ok = eachSpec(v, func(first, last int64, suffix bool) {
		if count++; count > maxRanges {
			return
		}
		r, sat := specRange(first, last, suffix, size)
		if !sat {
			return
		}
		for i := range rs {
			if r.start <= rs[i].end && rs[i].start <= r.end {
				rs[i] = byteRange{min(r.start, rs[i].start), max(r.end, rs[i].end)}
				return
			}
		}
		rs = append(rs, r)
	})
	if !ok || count > maxRanges {
		return nil, false
	}
	return mergeOverlaps(rs), true
}

// mergeOverlaps merges ranges that a later merge made overlap.
func mergeOverlaps(rs []byteRange) []byteRange {
	for i := 0; i < len(rs); i++ {
		for j := i + 1; j < len(rs); j++ {
			if rs[j].start <= rs[i].end && rs[i].start <= rs[j].end {
				rs[i] = byteRange{min(rs[i].start, rs[j].start), max(rs[i].end, rs[j].end)}
				rs = append(rs[:j], rs[j+1:]...)
				j = i
			}
		}
	}
	return rs
}

// piece is a part of a range response body: literal bytes (the
// multipart delimiters and part heads) or [off, end) of the stored body.
type piece struct {
	lit      []byte
	off, end int64
}

// rangeBody reads its pieces in order from src.
type rangeBody struct {
	src    io.ReaderAt
	pieces []piece
	i      int
	stored bool // every byte it reads is stored: no Read waits on the origin
}

// Ready reports whether the next Read returns without waiting on the
// origin (proxy.ReadyBody).
func (b *rangeBody) Ready() bool { return b.stored }

// wanter is implemented by a source that fetches what it lacks: it hears
// where the piece being read ends, so that one origin fetch covers it.
type wanter interface{ want(end int64) }

// finisher is implemented by a source that has work to end once the body
// has been read whole.
type finisher interface{ finish() }

func (b *rangeBody) Read(p []byte) (int, error) {
	for b.i < len(b.pieces) {
		pc := &b.pieces[b.i]
		if len(pc.lit) > 0 {
			n := copy(p, pc.lit)
			pc.lit = pc.lit[n:]
			return n, nil
		}
		if pc.off >= pc.end {
			b.i++
			if b.i < len(b.pieces) {
				b.wantPiece()
			}
			continue
		}
		n, err := b.src.ReadAt(p[:min(int64(len(p)), pc.end-pc.off)], pc.off)
		pc.off += int64(n)
		switch {
		case err == io.EOF && pc.off < pc.end, n == 0 && err == nil:
			err = io.ErrUnexpectedEOF // a stored body shorter than its size
		case err == io.EOF:
			err = nil
		}
		return n, err
	}
	if f, ok := b.src.(finisher); ok {
		f.finish()
	}
	return 0, io.EOF
}

// wantPiece tells a fetching source where the current piece ends.
func (b *rangeBody) wantPiece() {
	if w, ok := b.src.(wanter); ok && b.i < len(b.pieces) && b.pieces[b.i].lit == nil {
		w.want(b.pieces[b.i].end)
	}
}

// setRangeBody answers the Range request req on a body of size bytes read
// from src, with the stored fields of hdr: 206 with one range, 206
// multipart/byteranges with several, 416 when none is satisfiable, the
// whole body when the field is to be ignored or If-Range does not hold
// (RFC 9110 sections 13.1.5 and 14). It sets the reply's status, fields,
// length and body; src is read only if there is a body to send.
func (r *Reply) setRangeBody(req *httphead.Request, hdr []byte, size int64, src io.ReaderAt) {
	rs := []byteRange{{0, size}}
	if rng := req.Header.Peek("Range"); rng != nil && string(req.Method) == "GET" && ifRangeHolds(req, hdr) {
		if got, ok := parseRanges(rng, size); ok {
			rs = got
			if len(rs) == 0 {
				r.head.Status = 416
				r.scratch = strconv.AppendInt(append(r.scratch[:0], "bytes */"...), size, 10)
				r.setContentRange()
				r.head.ContentLength = 0
				return
			}
			r.head.Status = 206
		}
	}
	_, fetches := src.(wanter)
	body := &rangeBody{src: src, stored: !fetches}
	switch {
	case len(rs) == 1:
		if r.head.Status == 206 {
			r.scratch = appendContentRange(r.scratch[:0], rs[0].start, rs[0].end-1, size)
			r.setContentRange()
		}
		body.pieces = []piece{{off: rs[0].start, end: rs[0].end}}
		r.head.ContentLength = rs[0].end - rs[0].start
	default:
		body.pieces, r.head.ContentLength = r.multipart(hdr, rs, size)
	}
	if string(req.Method) == "HEAD" {
		return
	}
	body.wantPiece()
	r.Body = body
}

// multipart sets the reply's Content-Type to multipart/byteranges and
// returns the pieces of its body and their length (RFC 9110 section
// 14.6): each part carries the stored Content-Type and its Content-Range.
func (r *Reply) multipart(hdr []byte, rs []byteRange, size int64) ([]piece, int64) {
	boundary := strconv.AppendUint([]byte("outpost-"), rand.Uint64(), 36)
	ctype := headerValue(hdr, "Content-Type")
	r.head.Header.Del("Content-Type")
	r.head.Header.Del("Content-Range") // a stored 200's own: each part carries its range
	r.head.Header.Add([]byte("Content-Type"), append([]byte("multipart/byteranges; boundary="), boundary...))
	pieces := make([]piece, 0, 2*len(rs)+1)
	var total int64
	for i, rg := range rs {
		var h []byte
		if i > 0 {
			h = append(h, "\r\n"...)
		}
		h = append(append(append(h, "--"...), boundary...), "\r\n"...)
		if ctype != nil {
			h = append(append(append(h, "Content-Type: "...), ctype...), "\r\n"...)
		}
		h = appendContentRange(append(h, "Content-Range: "...), rg.start, rg.end-1, size)
		h = append(h, "\r\n\r\n"...)
		pieces = append(pieces, piece{lit: h}, piece{off: rg.start, end: rg.end})
		total += int64(len(h)) + rg.end - rg.start
	}
	tail := append(append([]byte("\r\n--"), boundary...), "--\r\n"...)
	pieces = append(pieces, piece{lit: tail})
	return pieces, total + int64(len(tail))
}
