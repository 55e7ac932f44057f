package cache

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/trace"
)

// Segmented objects (RFC 9111 sections 3.3 and 3.4, and what Fastly calls
// segmented caching). A partial response (206), and a full one whose
// length is above the policy's segment threshold, are stored as a head and
// fixed-size segments, each its own storage entry:
//
//   - the head, under the object's key (the variant key under Vary), is
//     an ordinary entry of kind kindSegmented: the response's metadata
//     (status 200, the fields of the whole representation, freshness), its
//     version in the epoch field, and a 16-byte body holding the
//     representation's length and the segment size;
//   - segment i holds bytes [i*size, (i+1)*size) of the body (the last one
//     may be shorter) under the head's key, segmentSep, the version, the
//     segment size and i.
//
// The version is a hash of the representation's validator: its strong
// ETag, else its Last-Modified date. A response without one is never
// segmented (partials without one are not stored), since segments of two
// versions could not be told apart. Segments of one version combine
// whatever fetch brought them; a segment of another version is under
// another key, so it is a miss. Each segment is evicted on its own, so the
// store never has to hold a large object whole, and its per-object limit
// no longer refuses one.
//
// A reply from a segmented object reads the segments it needs in order
// (segReader): a stored segment is read from the store; a run of missing
// ones is fetched from the origin with one Range request aligned to
// segment boundaries and If-Range carrying the validator, and stored as it
// streams to the client. A miss for a Range request asks the origin for
// the aligned segments only (alignRange); a full miss of a large object
// streams the origin body to the client, filling the segments as it goes.

// Defaults of the segment policy.
const (
	DefaultSegmentSize      = 1 << 20
	DefaultSegmentThreshold = 8 << 20
)

// segmentSep follows the head's key in each segment key.
const segmentSep = "\x00s"

// tableLen is the length of a head's body.
const tableLen = 16

// segTable is what a head's body holds.
type segTable struct{ size, segSize int64 }

// servable reports whether m describes a response to serve: a whole
// one, or the head of a segmented one with its table.
func (m *meta) servable(obj storage.Object) bool {
	return m.kind == kindObject || m.kind == kindSegmented && obj.Size() == tableLen
}

func (t segTable) encode() []byte {
	b := binary.LittleEndian.AppendUint64(make([]byte, 0, tableLen), uint64(t.size))
	return binary.LittleEndian.AppendUint64(b, uint64(t.segSize))
}

// readTable reads a head's body.
func readTable(obj storage.Object) (segTable, bool) {
	var b [tableLen]byte
	if obj.Size() != tableLen {
		return segTable{}, false
	}
	if n, _ := obj.ReadAt(b[:], 0); n != tableLen {
		return segTable{}, false
	}
	t := segTable{int64(binary.LittleEndian.Uint64(b[:])), int64(binary.LittleEndian.Uint64(b[8:]))}
	return t, t.size >= 0 && t.segSize > 0
}

// segment returns the bounds of segment i.
func (t segTable) segment(i int64) (start, end int64) {
	start = i * t.segSize
	return start, min(start+t.segSize, t.size)
}

func (p *Policy) segmentSize() int64 {
	if p.SegmentSize > 0 {
		return p.SegmentSize
	}
	return DefaultSegmentSize
}

// segmented reports whether a full response of size bytes is stored in
// segments.
func (p *Policy) segmented(size int64) bool {
	threshold := p.SegmentThreshold
	if threshold <= 0 {
		threshold = DefaultSegmentThreshold
	}
	return size > threshold
}

// validatorOf returns the stored representation's validator for If-Range
// (RFC 9110 section 13.1.5): its strong ETag, else its Last-Modified date.
func validatorOf(hdr []byte) []byte {
	if etag := headerValue(hdr, "ETag"); len(etag) > 0 && etag[0] == '"' {
		return etag
	}
	if lm := headerValue(hdr, "Last-Modified"); lm != nil {
		if _, ok := parseDate(lm); ok {
			return lm
		}
	}
	return nil
}

// versionOf hashes a validator (FNV-1a: stable across restarts, so that a
// disk store's segments are found again).
func versionOf(v []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range v {
		h = (h ^ uint64(c)) * 1099511628211
	}
	return h
}

// partial is the span a 206 response carries (RFC 9110 section 14.4).
type partial struct {
	ok     bool
	r      byteRange
	size   int64
	status int // the origin's status, for Cache-Status
}

// contentRange parses "bytes first-last/complete"; an unknown complete
// length ("*") is not usable.
func contentRange(v []byte) (p partial) {
	v = httphead.TrimOWS(v)
	if len(v) < 6 || !httphead.EqualFold(v[:6], "bytes ") {
		return p
	}
	spec, total, found := bytes.Cut(v[6:], []byte("/"))
	first, last, dash := bytes.Cut(httphead.TrimOWS(spec), []byte("-"))
	f, ok1 := digits(first)
	l, ok2 := digits(last)
	size, ok3 := digits(total)
	if !found || !dash || !ok1 || !ok2 || !ok3 || l < f || l >= size {
		return p
	}
	return partial{ok: true, r: byteRange{f, l + 1}, size: size, status: 206}
}

// alignRange turns the client's Range on a miss into a request for the
// segments holding the first range it asks for, so that what comes back
// can be stored: bytes=A-B with A and B+1 on segment boundaries, bytes=A-
// for an open range, a suffix range as it is. The reply reads the ranges
// in the order asked, so the segments of the others are fetched (only)
// when it comes to them. A malformed field asks for the whole body.
func alignRange(o, req *httphead.Request, pol *Policy) {
	v := req.Header.Peek("Range")
	if v == nil || string(req.Method) != "GET" {
		return
	}
	seg := pol.segmentSize()
	var b []byte
	ok := eachSpec(v, func(first, last int64, suffix bool) {
		switch {
		case b != nil:
		case suffix:
			b = strconv.AppendInt([]byte("bytes=-"), last, 10)
		default:
			b = append(strconv.AppendInt([]byte("bytes="), first/seg*seg, 10), '-')
			if last >= 0 {
				b = strconv.AppendInt(b, (last/seg+1)*seg-1, 10)
			}
		}
	})
	if ok {
		o.Header.Set("Range", string(b))
	}
}

// segmentRequest makes the origin request of a miss ask for segments: the
// aligned segments of the client's Range, or the first segment of an
// object whose body of unknown length was too large to store whole (its
// 206 gives the length, and the object is then stored in segments).
func (c *Cache) segmentRequest(r *Reply) {
	j := &r.j
	alignRange(&r.oreq, j.req, j.pol)
	if r.oreq.Header.Has("Range") || !c.isLarge(j.key) {
		return
	}
	b := strconv.AppendInt([]byte("bytes=0-"), j.pol.segmentSize()-1, 10)
	r.oreq.Header.Set("Range", string(b))
	note(j.tr, "segments asked: the body was too large to store whole")
}

// markLarge notes that key's body, of unknown length, was too large for
// the store.
func (c *Cache) markLarge(key string) {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	if c.large == nil || len(c.large) >= maxHitForPass {
		c.large = make(map[string]struct{})
	}
	c.large[key] = struct{}{}
}

func (c *Cache) isLarge(key string) bool {
	c.segMu.Lock()
	defer c.segMu.Unlock()
	_, ok := c.large[key]
	return ok
}

// admitPartial decides whether a 206 may be stored: a single part with a
// known complete length and a validator is stored as the whole
// representation's head and the segments it covers; anything else is not
// stored, and the client's own request is sent to the origin as it is,
// since the partial response answered the cache's aligned range, not the
// client's.
func (c *Cache) admitPartial(r *Reply, f *fill, resp *httphead.Response, body io.ReadCloser, reqTime, respTime time.Time) (*Reply, error) {
	j := &r.j
	p := contentRange(resp.Header.Peek("Content-Range"))
	if !p.ok || resp.Header.Count("Content-Range") != 1 || resp.ContentLength >= 0 && resp.ContentLength != p.r.end-p.r.start {
		return c.passPartial(r, f, body, "not a single part of known length")
	}
	resp.Header.Del("Content-Range")
	if validatorOf(resp.Header.AppendTo(r.scratch[:0])) == nil {
		return c.passPartial(r, f, body, "no strong validator to combine it with")
	}
	j.part = p
	resp.Status, resp.ContentLength = 200, p.size // the head stands for the whole representation
	return c.admit(r, f, resp, body, reqTime, respTime)
}

// passPartial drops a partial response that is not stored and forwards
// the client's request (RFC 9111 section 3.3 allows storing none of it).
func (c *Cache) passPartial(r *Reply, f *fill, body io.ReadCloser, why string) (*Reply, error) {
	body.Close()
	c.stats.NotStored.Add(1)
	c.settle(f, outcomePass, ReasonStatus, nil)
	c.closeStale(&r.j)
	if r.j.tr != nil {
		r.j.tr.Add("cache-store", "partial not stored: "+why)
	}
	return c.forward(r, StatusMiss, ReasonStatus, r.j.fwd)
}

// fillSegments stores a response as a segmented object (see above): it
// commits the head, lets the requests waiting on f look it up, and serves
// the client from the head, reading the origin body as the first source
// of its segments.
func (c *Cache) fillSegments(r *Reply, f *fill, m *meta, objKey string, resp *httphead.Response, body io.ReadCloser, age time.Duration, src string) (*Reply, error) {
	j := &r.j
	tab := segTable{size: resp.ContentLength, segSize: j.pol.segmentSize()}
	span := byteRange{0, tab.size}
	fwdStatus := resp.Status
	if j.part.ok {
		span, fwdStatus = j.part.r, j.part.status
	}
	val := validatorOf(m.headers)
	if val == nil { // the validator is not stored (no-cache="ETag"): nothing keeps versions apart
		if j.part.ok {
			return c.passPartial(r, f, body, "no validator stored")
		}
		return c.pass(r, f, resp, body, age, ReasonStatus), nil
	}
	m.kind, m.epoch = kindSegmented, versionOf(val)
	sr := r.newSegReader(objKey, m, tab)
	// Claimed before the head can be found, so that no reader fetches
	// what this body brings.
	sr.claim(span.start/tab.segSize, (span.end+tab.segSize-1)/tab.segSize)
	if err := c.storeHead(objKey, m.encode(nil), tab, j.gen); err != nil {
		sr.release(sr.claimTo)
		c.log.Debug("cache segmented head not stored", "key", objKey, "err", err)
		if j.part.ok {
			return c.passPartial(r, f, body, "store error")
		}
		return c.pass(r, f, resp, body, age, ReasonStoreError), nil
	}
	c.clearHitForPass(j.key)
	c.segMu.Lock()
	delete(c.large, j.key)
	c.segMu.Unlock()
	c.stats.Stored.Add(1)
	if j.tr != nil {
		j.tr.Add("cache-ttl", strconv.FormatInt(int64(m.lifetime/time.Second), 10)+"s from "+src)
		j.tr.Add("cache-store", "stored in segments of "+strconv.FormatInt(tab.segSize, 10)+" bytes")
	}
	c.settle(f, outcomeUpdated, ReasonNone, nil) // its waiters find the head
	r.setStoredHead(m)
	sr.body, sr.bodyAt, sr.bodyEnd, sr.gen = body, span.start, span.end, j.gen
	sr.fetches = 1
	if !r.bodilessAnswer(j.req, m) {
		r.serveSegments(j.req, m, tab, sr)
	} else {
		sr.close()
	}
	r.finishHead(age, cacheStatus{fwd: j.fwd, fwdStatus: fwdStatus, stored: true,
		ttl: m.lifetime - age.Truncate(time.Second), hasTTL: true})
	c.closeStale(j)
	r.Status, r.Reason = j.status, j.reason
	return r, nil
}

// storeHead commits a segmented object's head.
func (c *Cache) storeHead(key string, metaB []byte, tab segTable, gen uint64) error {
	w, err := c.create(key, metaB, tableLen, gen)
	if err != nil {
		return err
	}
	if _, err = w.Write(tab.encode()); err != nil {
		w.Abort()
	} else {
		err = w.Commit()
	}
	if rl, ok := w.(storage.Releaser); ok {
		rl.Release()
	}
	return err
}

// serveSegments sets the reply's body from a segmented object through sr,
// answering the client's Range request. The reply takes sr.
func (r *Reply) serveSegments(req *httphead.Request, m *meta, tab segTable, sr *segReader) {
	r.seg = sr
	r.setRangeBody(req, m.headers, tab.size, sr)
	body, ok := r.Body.(*rangeBody)
	if !ok {
		sr.close()
		r.seg = nil
		return
	}
	r.partial = sr.missing(body.pieces)
	body.stored = !r.partial && sr.body == nil // a live origin fetch serves some of it
}

// missing reports whether a segment that pieces need is not stored: the
// reply then goes forward to complete it (Cache-Status fwd=partial).
func (s *segReader) missing(pieces []piece) bool {
	for _, pc := range pieces {
		if pc.lit != nil || pc.off >= pc.end {
			continue
		}
		for i := pc.off / s.tab.segSize; i <= (pc.end-1)/s.tab.segSize; i++ {
			if s.body == nil || i < s.bodyAt/s.tab.segSize || i >= (s.bodyEnd+s.tab.segSize-1)/s.tab.segSize {
				if !s.has(i) {
					return true
				}
			}
		}
	}
	return false
}

// newSegReader returns a reader of the segmented object stored under key.
func (r *Reply) newSegReader(key string, m *meta, tab segTable) *segReader {
	j := &r.j
	return &segReader{c: r.c, ctx: j.origin, origin: j.origin, noWait: -1, req: j.req, pol: j.pol, tr: j.tr, key: key,
		version: m.epoch, validator: bytes.Clone(validatorOf(m.headers)), tab: tab}
}

// errVersionChanged ends a reply whose object changed at the origin while
// it was read: its bytes so far belong to the old version.
var errVersionChanged = errors.New("cache: the object changed at the origin during a segmented read")

// segReader reads a segmented object at increasing offsets (see the top of
// this file). It holds at most one stored segment open, one origin fetch
// and one segment being written.
type segReader struct {
	c         *Cache
	ctx       context.Context // the client's: a wait ends when it goes
	origin    Origin
	detached  bool
	req       *httphead.Request
	pol       *Policy
	tr        *trace.Trace
	key       string
	version   uint64
	validator []byte
	tab       segTable
	wantEnd   int64 // where the piece being read ends

	seg    storage.Object // stored segment open for reading, segIdx
	segIdx int64

	body    io.ReadCloser // origin fetch, at bodyAt, up to bodyEnd
	bodyAt  int64
	bodyEnd int64
	gen     uint64 // purge generation when the fetch left

	w    storage.Writer // segment being stored, wIdx
	wIdx int64

	// claimed are the segments [claimFrom, claimTo) this reader's fetch
	// has registered as in flight; noWait is a segment it gave up waiting
	// for.
	claimFrom, claimTo int64
	noWait             int64

	oreq     httphead.Request
	keyBuf   []byte
	err      error
	hits     int   // segments read from the store
	fetches  int   // origin fetches
	stored   int   // segments stored
	fetchedB int64 // bytes read from the origin
}

func (s *segReader) want(end int64) { s.wantEnd = end }

func (s *segReader) segKey(i int64) string {
	b := append(append(s.keyBuf[:0], s.key...), segmentSep...)
	b = binary.LittleEndian.AppendUint64(b, s.version)
	b = binary.LittleEndian.AppendUint64(b, uint64(s.tab.segSize))
	s.keyBuf = binary.LittleEndian.AppendUint64(b, uint64(i))
	return string(s.keyBuf)
}

// ReadAt reads at off, from the open segment, the origin fetch, the fetch
// of another reader (waiting for it), a stored segment or a new fetch, in
// that order of preference.
func (s *segReader) ReadAt(p []byte, off int64) (int, error) {
	for s.err == nil {
		i := off / s.tab.segSize
		start, end := s.tab.segment(i)
		switch {
		case s.seg != nil && s.segIdx == i:
			n, err := s.seg.ReadAt(p[:min(int64(len(p)), end-off)], off-start)
			if n > 0 {
				return n, nil
			}
			if err == nil || err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			s.err = fmt.Errorf("cache: reading segment %d: %w", i, err)
		case s.body != nil && s.bodyAt == off:
			return s.fromOrigin(p)
		case s.body != nil && s.bodyAt < off && off < s.bodyEnd:
			s.skip(off)
		case s.waitFlight(i): // before the store: a segment is released only once stored
		case s.openSegment(i):
		default:
			s.fetch(i, off)
		}
	}
	return 0, s.err
}

// openSegment opens stored segment i, if it is there whole.
func (s *segReader) openSegment(i int64) bool {
	if s.seg != nil {
		s.seg.Close()
		s.seg = nil
	}
	obj, err := s.c.store.Lookup(s.segKey(i))
	if err != nil {
		return false
	}
	if start, end := s.tab.segment(i); obj.Size() != end-start {
		obj.Close()
		return false
	}
	s.seg, s.segIdx = obj, i
	s.hits++
	return true
}

// has reports whether segment i is stored.
func (s *segReader) has(i int64) bool {
	if ct, ok := s.c.store.(storage.Container); ok {
		return ct.Contains(s.segKey(i))
	}
	obj, err := s.c.store.Lookup(s.segKey(i))
	if err != nil {
		return false
	}
	obj.Close()
	return true
}

// fetch asks the origin for the run of missing segments that starts with
// segment i and ends with the last segment the current piece needs or the
// first stored one, with If-Range so that only the same version comes
// back. Anything but a 206 of the same version ends the read; a changed
// object loses its head, so that the next request fetches it anew.
func (s *segReader) fetch(i, off int64) {
	s.closeFetch()
	last := (min(max(s.wantEnd, 1), s.tab.size) - 1) / s.tab.segSize
	k := i + 1
	for k <= last && !s.inFlight(k) && !s.has(k) {
		k++
	}
	s.claim(i, k)
	start, _ := s.tab.segment(i)
	_, end := s.tab.segment(k - 1)
	if !s.detached { // the client's origin is busy with this reply: fetch on a copy
		s.origin, s.detached = s.origin.Detach(), true
	}
	o := &s.oreq
	originRequest(o, s.req, nil, !s.pol.KeepAcceptEncoding)
	b := strconv.AppendInt(append(s.keyBuf[:0], "bytes="...), start, 10)
	o.Header.AddString("Range", string(strconv.AppendInt(append(b, '-'), end-1, 10)))
	o.Header.Add([]byte("If-Range"), s.validator)
	s.gen = s.c.generation()
	resp, body, err := s.origin.Fetch(o)
	if err != nil {
		s.err = fmt.Errorf("cache: fetching segments: %w", err)
		s.closeFetch() // releases the claims
		return
	}
	s.fetches++
	note(s.tr, "segments fetched: bytes="+strconv.FormatInt(start, 10)+"-"+strconv.FormatInt(end-1, 10))
	p := contentRange(resp.Header.Peek("Content-Range"))
	same := resp.Status == 206 && p.ok && p.size == s.tab.size && p.r.start <= off && p.r.end > off && s.sameVersion(resp)
	if !same {
		body.Close()
		if resp.Status == 200 || resp.Status == 206 {
			s.c.store.Delete(s.key)
			note(s.tr, "segments: the object changed, head dropped")
		}
		s.err = fmt.Errorf("%w (origin answered %d)", errVersionChanged, resp.Status)
		s.closeFetch()
		return
	}
	s.body, s.bodyAt, s.bodyEnd = body, p.r.start, p.r.end
}

// sameVersion reports whether a 206 carries the validator the segments
// were stored under (or none: If-Range vouched for it).
func (s *segReader) sameVersion(resp *httphead.Response) bool {
	name := "ETag"
	if !bytes.HasPrefix(s.validator, []byte{'"'}) {
		name = "Last-Modified"
	}
	v := resp.Header.Peek(name)
	return v == nil || bytes.Equal(httphead.TrimOWS(v), s.validator)
}

// fromOrigin reads the fetch at bodyAt into p, storing what it reads.
func (s *segReader) fromOrigin(p []byte) (int, error) {
	n, err := s.body.Read(p[:min(int64(len(p)), s.bodyEnd-s.bodyAt)])
	if n > 0 {
		s.store(p[:n])
	}
	switch {
	case s.bodyAt == s.bodyEnd:
		s.closeFetch()
	case err == io.EOF || n == 0 && err == nil:
		err = io.ErrUnexpectedEOF
		fallthrough
	case err != nil:
		s.err = fmt.Errorf("%w: segments: %w", ErrFillAborted, err)
		s.closeFetch()
		if n == 0 {
			return 0, s.err
		}
	}
	return n, nil
}

// skip reads the fetch up to off, storing the bytes, for a reader that
// starts inside it; false means it failed (s.err says why).
func (s *segReader) skip(off int64) bool {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	for s.bodyAt < off && s.err == nil {
		buf := *bp
		if _, err := s.fromOrigin(buf[:min(int64(len(buf)), off-s.bodyAt)]); err != nil {
			return false
		}
	}
	return s.err == nil
}

// store writes bytes read from the fetch (at bodyAt) into their segments:
// a segment is stored when the fetch covers it from its first byte, and
// committed when its last byte is in.
func (s *segReader) store(b []byte) {
	s.fetchedB += int64(len(b))
	s.c.stats.BytesFromOrigin.Add(int64(len(b)))
	for len(b) > 0 {
		i := s.bodyAt / s.tab.segSize
		start, end := s.tab.segment(i)
		k := min(int64(len(b)), end-s.bodyAt)
		if s.w == nil && s.bodyAt == start {
			if w, err := s.c.create(s.segKey(i), segmentMeta(s.version), end-start, s.gen); err == nil {
				s.w, s.wIdx = w, i
			}
		}
		if s.w != nil && s.wIdx == i {
			if _, err := s.w.Write(b[:k]); err != nil {
				s.endWrite(false)
			} else if s.bodyAt+k == end {
				s.endWrite(true)
			}
		}
		b, s.bodyAt = b[k:], s.bodyAt+k
	}
	s.release(s.bodyAt / s.tab.segSize) // the segments passed: stored or not, waiters may look
}

// segmentMeta is the metadata of a segment: its kind and version.
func segmentMeta(version uint64) []byte {
	m := meta{kind: kindSegment, epoch: version}
	return m.encode(nil)
}

// endWrite commits or aborts the segment being written.
func (s *segReader) endWrite(commit bool) {
	if commit && s.w.Commit() == nil {
		s.stored++
	} else if !commit {
		s.w.Abort()
	}
	if rl, ok := s.w.(storage.Releaser); ok {
		rl.Release()
	}
	s.w = nil
}

// closeFetch ends the origin fetch; a segment it left half-written is
// dropped.
func (s *segReader) closeFetch() {
	if s.w != nil {
		s.endWrite(false)
	}
	s.release(s.claimTo)
	if s.body != nil {
		s.body.Close()
		s.body = nil
	}
}

// finish completes the segment the client's last byte fell in, from the
// fetch (at most a segment more), so that it is stored too.
func (s *segReader) finish() {
	if s.w != nil && s.body != nil && s.err == nil {
		if _, end := s.tab.segment(s.wIdx); end <= s.bodyEnd {
			s.skip(end)
		}
	}
	s.closeFetch()
}

// close releases what the reader holds and records what it did.
func (s *segReader) close() {
	s.closeFetch()
	if s.seg != nil {
		s.seg.Close()
		s.seg = nil
	}
	if s.tr != nil {
		s.tr.Add("cache-segments", fmt.Sprintf("hit=%d fetches=%d stored=%d origin-bytes=%d", s.hits, s.fetches, s.stored, s.fetchedB))
	}
}

// A segFlight is a segment an origin fetch is bringing: a reader that
// needs it waits (at most the policy's lock timeout) rather than fetch it
// again, so concurrent requests for a large object make one origin fetch
// per segment, as whole objects collapse onto one fill.
type segFlight struct {
	owner *segReader
	done  chan struct{} // closed when the segment is stored or given up
}

// claim registers segments [from, to) as coming with this reader's fetch,
// up to the first one another fetch brings already.
func (s *segReader) claim(from, to int64) {
	c := s.c
	c.segMu.Lock()
	defer c.segMu.Unlock()
	if c.segFlights == nil {
		c.segFlights = make(map[string]*segFlight)
	}
	s.claimFrom, s.claimTo = from, from
	for ; s.claimTo < to; s.claimTo++ {
		k := s.segKey(s.claimTo)
		if c.segFlights[k] != nil {
			break
		}
		c.segFlights[k] = &segFlight{owner: s, done: make(chan struct{})}
	}
}

// release ends the claims on the segments before index to.
func (s *segReader) release(to int64) {
	c := s.c
	if s.claimFrom >= min(to, s.claimTo) {
		return
	}
	c.segMu.Lock()
	defer c.segMu.Unlock()
	for ; s.claimFrom < min(to, s.claimTo); s.claimFrom++ {
		k := s.segKey(s.claimFrom)
		if f := c.segFlights[k]; f != nil && f.owner == s {
			delete(c.segFlights, k)
			close(f.done)
		}
	}
}

// flight returns the fetch another reader has in flight for segment i.
func (s *segReader) flight(i int64) *segFlight {
	c := s.c
	c.segMu.Lock()
	defer c.segMu.Unlock()
	if f := c.segFlights[s.segKey(i)]; f != nil && f.owner != s {
		return f
	}
	return nil
}

func (s *segReader) inFlight(i int64) bool { return s.flight(i) != nil }

// waitFlight waits for segment i when another fetch brings it, and
// reports whether it waited; after the lock timeout it stops waiting for
// it and fetches it itself.
func (s *segReader) waitFlight(i int64) bool {
	f := s.flight(i)
	if f == nil || s.noWait == i {
		return false
	}
	s.closeFetch() // hold no origin connection while waiting
	t := time.NewTimer(s.pol.lockTimeout())
	defer t.Stop()
	select {
	case <-f.done:
	case <-t.C:
		s.noWait = i
	case <-s.ctx.Done():
		s.err = fmt.Errorf("cache: waiting for a segment: %w", s.ctx.Err())
	}
	return true
}
