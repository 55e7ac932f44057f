package cache

import (
	"bytes"
	"io"
	"strconv"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage"
)

// Reply is the response Serve produced: a head ready for the client and a
// body. Exactly one of BodyBytes (a stored body held in memory, to write
// without copying) and Body is set when there is a body. Close must be
// called once the reply has been sent; the Reply must not be used after.
type Reply struct {
	// Head is the response head for the client, with Age and Cache-Status
	// set and the edge-targeted fields removed; ContentLength is -1 when
	// the length is not known yet.
	Head *httphead.Response
	// BodyBytes is a stored body held in memory, to write as it is.
	BodyBytes []byte
	// Body streams the body otherwise: from storage, from a fill as it
	// arrives, or from the origin. A read error means the body is cut short
	// and the client's response must be aborted.
	Body io.Reader
	// Status says how the request was served and Reason why it was not
	// served from, or stored in, the cache (for metrics and the trace).
	Status Status
	Reason Reason

	c       *Cache
	j       job   // the request being served
	e       entry // the stored object looked up, until served or closed
	head    httphead.Response
	obj     storage.Object // the stored object served, closed by Close
	objR    objectReader
	fr      fillReader
	fill    *fill            // the fill fr follows, detached by Close
	seg     *segReader       // the segments being read, closed by Close
	partial bool             // seg must fetch segments that are not stored
	origin  originBody       // a body streamed from the origin unstored
	oreq    httphead.Request // the request sent to the origin by lead

	key     []byte // primary key being built
	vkey    []byte // variant key being built
	scratch []byte // formatting space
}

var replyPool = sync.Pool{New: func() any { return new(Reply) }}

func (c *Cache) newReply() *Reply {
	r := replyPool.Get().(*Reply)
	r.c = c
	return r
}

// Close releases what the reply holds and returns it to its pool.
func (r *Reply) Close() error {
	var err error
	if r.e.obj != nil {
		r.e.obj.Close()
	}
	if r.obj != nil {
		err = r.obj.Close()
	}
	if r.fill != nil {
		r.fill.detach(&r.fr)
	}
	if r.j.stores != nil && r.j.tr != nil {
		if done, end := r.j.stores.result(); done {
			r.j.tr.Add("cache-store", end)
		}
	}
	if r.seg != nil {
		r.seg.close()
	}
	if r.origin.rc != nil {
		if cerr := r.origin.rc.Close(); err == nil {
			err = cerr
		}
	}
	if r.head.Header.Size()+r.oreq.Header.Size() > maxPooledHead || cap(r.key)+cap(r.vkey)+cap(r.scratch) > maxPooledHead {
		*r = Reply{} // an outsized reply would pin its buffers in the pool
	}
	key, vkey, scratch, head, oreq := r.key[:0], r.vkey[:0], r.scratch[:0], r.head, r.oreq
	head.Reset()
	oreq.Reset()
	*r = Reply{key: key, vkey: vkey, scratch: scratch, head: head, oreq: oreq}
	replyPool.Put(r)
	return err
}

// maxPooledHead bounds the buffers a pooled Reply keeps, in bytes.
const maxPooledHead = 64 << 10

// cacheStatus describes the Cache-Status value of a reply (RFC 9211).
type cacheStatus struct {
	hit       bool
	fwd       string // "uri-miss", "vary-miss", "stale", "request", "bypass", "miss"
	fwdStatus int
	ttl       time.Duration // remaining freshness: lifetime minus the whole seconds of Age
	hasTTL    bool
	stored    bool // the response is in the cache (RFC 9211 section 2.5)
	detail    Reason
}

// collapse says how a request that waited on another's fetch ended.
type collapse uint8

const (
	collapseNone      collapse = iota // it waited on no fetch
	collapseReused                    // the fetch's response served it: "collapsed"
	collapseRefetched                 // it had to ask the origin itself: "collapsed=?0"
)

// finishHead adds Age and Cache-Status to the reply's head. A request that
// waited on another's fetch says whether it was served by it (RFC 9211
// section 2.6, which needs fwd): one served from the object a collapsed
// revalidation refreshed is not a hit, but the reuse of a forward that
// got a 304.
func (r *Reply) finishHead(age time.Duration, cs cacheStatus) {
	if r.j.collapsed == collapseReused && cs.hit {
		cs.hit, cs.fwd, cs.fwdStatus = false, r.j.fwd, 304
	}
	h := &r.head.Header
	r.scratch = strconv.AppendInt(r.scratch[:0], int64(age/time.Second), 10)
	h.Add(ageField, r.scratch)
	b := append(r.scratch[:0], r.c.name...)
	if cs.hit {
		b = append(b, "; hit"...)
	}
	if cs.fwd != "" {
		b = append(b, "; fwd="...)
		b = append(b, cs.fwd...)
	}
	if cs.fwdStatus != 0 {
		b = append(b, "; fwd-status="...)
		b = strconv.AppendInt(b, int64(cs.fwdStatus), 10)
	}
	if cs.hasTTL {
		b = append(b, "; ttl="...)
		b = strconv.AppendInt(b, int64(cs.ttl/time.Second), 10)
	}
	if cs.stored {
		b = append(b, "; stored"...)
	}
	switch r.j.collapsed {
	case collapseReused:
		b = append(b, "; collapsed"...)
	case collapseRefetched:
		b = append(b, "; collapsed=?0"...)
	}
	if cs.detail != ReasonNone {
		b = append(b, "; detail="...)
		b = append(b, cs.detail.String()...)
	}
	r.scratch = b
	h.Add(cacheStatusField, b)
	r.Head = &r.head
}

var (
	ageField         = []byte("Age")
	cacheStatusField = []byte("Cache-Status")
)

// edgeFields are never sent to clients: they speak to this cache. The
// surrogate-key field is one too, unless the policy keeps it.
var edgeFields = [...]string{"CDN-Cache-Control", "Surrogate-Control"}

func isEdgeField(name []byte, pol *Policy) bool {
	for _, f := range edgeFields {
		if httphead.EqualFold(name, f) {
			return true
		}
	}
	return httphead.EqualFold(name, pol.targetedField()) ||
		!pol.KeepSurrogateKey && isSurrogateKey(name, pol)
}

func isSurrogateKey(name []byte, pol *Policy) bool {
	return httphead.EqualFold(name, pol.surrogateKeyField())
}

// setStoredHead fills the reply head from stored metadata.
func (r *Reply) setStoredHead(m *meta) {
	r.head.Reset()
	r.head.Status = m.status
	r.head.ProtoMajor, r.head.ProtoMinor = 1, 1
	copyHeaders(&r.head.Header, m.headers)
}

// setOriginHead fills the reply head from an origin response, without the
// edge fields.
func (r *Reply) setOriginHead(resp *httphead.Response, pol *Policy) {
	r.head.Reset()
	r.head.Status = resp.Status
	r.head.SetReason(resp.Reason)
	r.head.ProtoMajor, r.head.ProtoMinor = resp.ProtoMajor, resp.ProtoMinor
	r.head.Header.CopyFrom(&resp.Header)
	r.head.Header.DelFunc(func(name, _ []byte) bool {
		return isEdgeField(name, pol) || httphead.EqualFold(name, "Age") // Age is recomputed
	})
	r.head.ContentLength = resp.ContentLength
	r.head.Chunked = resp.Chunked
	r.head.SetTransferCodings(resp.TransferCodings)
}

// bodiless turns the reply into a status without a body (304, 412) that
// keeps the object's other fields.
func (r *Reply) bodiless(status int) {
	r.head.Status, r.head.ContentLength = status, 0
	r.head.Header.DelFunc(func(name, _ []byte) bool {
		return httphead.EqualFold(name, "Content-Length") || httphead.EqualFold(name, "Content-Range")
	})
}

// serveObject sets the reply's body from a stored object, answering the
// client's conditional and Range requests (RFC 9110 sections 13 and 14).
// The reply takes the object.
func (r *Reply) serveObject(req *httphead.Request, obj storage.Object, m *meta) {
	r.obj = obj
	if r.bodilessAnswer(req, m) {
		return
	}
	if m.kind == kindSegmented {
		tab, ok := readTable(obj)
		if !ok {
			r.bodiless(502) // the head could not be read: nothing to serve
			return
		}
		r.serveSegments(req, m, tab, r.newSegReader(r.e.key, m, tab))
		return
	}
	size := obj.Size()
	start, end := int64(0), size
	if m.status == 200 && string(req.Method) == "GET" {
		rng := req.Header.Peek("Range")
		if bytes.IndexByte(rng, ',') >= 0 { // several ranges: multipart/byteranges
			r.setRangeBody(req, m.headers, size, obj)
			return
		}
		if rng != nil && ifRangeHolds(req, m.headers) {
			switch s, e, ok := parseRange(rng, size); {
			case ok && s < 0:
				r.head.Status = 416
				r.scratch = strconv.AppendInt(append(r.scratch[:0], "bytes */"...), size, 10)
				r.setContentRange()
				r.head.ContentLength = 0
				return
			case ok:
				r.head.Status = 206
				start, end = s, e+1
				r.scratch = appendContentRange(r.scratch[:0], s, e, size)
				r.setContentRange()
			}
		}
	}
	r.head.ContentLength = end - start
	if string(req.Method) == "HEAD" {
		return
	}
	if b, ok := obj.(storage.Bytes); ok {
		r.BodyBytes = b.Bytes()[start:end:end]
		return
	}
	r.objR = objectReader{obj: obj, off: start, end: end}
	r.Body = &r.objR
}

// bodilessAnswer answers a client's failed precondition (412) or a
// condition that holds (304) from stored fields, and reports whether it did.
func (r *Reply) bodilessAnswer(req *httphead.Request, m *meta) bool {
	switch {
	case m.status == 200 && preconditionFailed(req, m.headers):
		r.bodiless(412)
	case m.status == 200 && notModified(req, m.headers):
		r.bodiless(304)
	default:
		return false
	}
	return true
}

var contentRangeField = []byte("Content-Range")

// setContentRange puts r.scratch in the reply's one Content-Range field: a
// stored 200 may carry the origin's own, which the 206 or 416 the cache
// makes from it replaces.
func (r *Reply) setContentRange() {
	r.head.Header.Del("Content-Range")
	r.head.Header.Add(contentRangeField, r.scratch)
}

func appendContentRange(b []byte, start, end, size int64) []byte {
	b = append(b, "bytes "...)
	b = strconv.AppendInt(b, start, 10)
	b = append(b, '-')
	b = strconv.AppendInt(b, end, 10)
	b = append(b, '/')
	return strconv.AppendInt(b, size, 10)
}

// objectReader reads a byte range of a stored object.
type objectReader struct {
	obj      storage.Object
	off, end int64
}

// Ready: a stored body is read without waiting on the network
// (proxy.ReadyBody).
func (o *objectReader) Ready() bool { return true }

func (o *objectReader) Read(p []byte) (int, error) {
	if o.off >= o.end {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), o.end-o.off)]
	n, err := o.obj.ReadAt(p, o.off)
	o.off += int64(n)
	switch {
	case err == io.EOF && o.off >= o.end:
		err = nil
	case err == io.EOF, n == 0 && err == nil: // a stored body shorter than its size
		err = io.ErrUnexpectedEOF
	}
	return n, err
}

// WriteTo lets io.Copy hand a whole stored body to the store's own writer
// (the disk store sends it with sendfile).
func (o *objectReader) WriteTo(w io.Writer) (int64, error) {
	if wt, ok := o.obj.(io.WriterTo); ok && o.off == 0 && o.end == o.obj.Size() {
		n, err := wt.WriteTo(w)
		o.off += n
		return n, err
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var total int64
	for {
		n, err := o.Read(*bp)
		if n > 0 {
			m, werr := w.Write((*bp)[:n])
			total += int64(m)
			if werr != nil {
				return total, werr
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}

// originBody streams an origin body that is not being stored, counting it.
type originBody struct {
	rc    io.ReadCloser
	stats *Stats
}

// Ready passes on whether the origin's bytes are here (proxy.ReadyBody).
func (o *originBody) Ready() bool { return bodyReady(o.rc) }

// bodyReady reports whether r's next Read returns at once, for bodies
// that can tell (proxy.ReadyBody).
func bodyReady(r io.Reader) bool {
	rb, ok := r.(interface{ Ready() bool })
	return ok && rb.Ready()
}

func (o *originBody) Read(p []byte) (int, error) {
	n, err := o.rc.Read(p)
	o.stats.BytesFromOrigin.Add(int64(n))
	return n, err
}
