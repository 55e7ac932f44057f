package cache

import (
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage/memory"
	"github.com/outpost-edge/outpost/trace"
)

// rangeOrigin serves body with single-range support and If-Range against
// etag (an origin such as http.ServeContent), counting the body bytes it
// sends.
type rangeOrigin struct {
	*origin
	sent atomic.Int64
}

func newRangeOrigin(body func() string, etag func() string) *rangeOrigin {
	ro := &rangeOrigin{}
	ro.origin = newOrigin(func(req *httphead.Request, _ int) answer {
		b, tag := body(), etag()
		hdrs := []string{"Cache-Control: max-age=600", "ETag: " + tag, "Content-Type: text/plain"}
		if req.Header.Get("If-None-Match") == tag {
			return answer{status: 304, headers: hdrs}
		}
		rng := req.Header.Get("Range")
		if ir := req.Header.Get("If-Range"); ir != "" && ir != tag {
			rng = ""
		}
		if rng == "" {
			ro.sent.Add(int64(len(b)))
			return answer{headers: hdrs, body: b}
		}
		spec := strings.TrimPrefix(rng, "bytes=")
		first, last, _ := strings.Cut(spec, "-")
		size := len(b)
		s, e := 0, size-1
		switch {
		case first == "":
			n, _ := strconv.Atoi(last)
			s = max(size-n, 0)
		default:
			s, _ = strconv.Atoi(first)
			if last != "" {
				e, _ = strconv.Atoi(last)
				e = min(e, size-1)
			}
		}
		if s >= size {
			return answer{status: 416, headers: append(hdrs, "Content-Range: bytes */"+strconv.Itoa(size))}
		}
		ro.sent.Add(int64(e + 1 - s))
		cr := "Content-Range: bytes " + strconv.Itoa(s) + "-" + strconv.Itoa(e) + "/" + strconv.Itoa(size)
		return answer{status: 206, headers: append(hdrs, cr), body: b[s : e+1]}
	})
	return ro
}

const segBody = "abcdefghijklmnopqrst" // 20 bytes: segments of 4

func segEnv(t *testing.T) (*env, *rangeOrigin) {
	e := newEnv(t)
	e.pol.SegmentSize, e.pol.SegmentThreshold = 4, 16
	o := newRangeOrigin(func() string { return segBody }, func() string { return `"v1"` })
	return e, o
}

// RFC 9111 section 3.3: a 206 is stored, and a later request for the same
// range, or a range inside it, is served from it.
func TestRFC9111_3_3_PartialResponseStoredAndServed(t *testing.T) {
	e, o := segEnv(t)
	r := e.get(o.origin, "/p", "Range: bytes=2-5")
	if r.status != 206 || r.body != "cdef" || r.get("Content-Range") != "bytes 2-5/20" {
		t.Fatalf("miss: %d %q %q", r.status, r.body, r.get("Content-Range"))
	}
	if got := o.last().Header.Get("Range"); got != "bytes=0-7" {
		t.Errorf("origin asked for %q, want the aligned segments bytes=0-7", got)
	}
	for _, rng := range []string{"bytes=2-5", "bytes=3-4", "bytes=0-7"} {
		r := e.get(o.origin, "/p", "Range: "+rng)
		if r.code != StatusHit || r.status != 206 || r.readErr != nil {
			t.Errorf("%s: %v %d %v, want a 206 hit", rng, r.code, r.status, r.readErr)
		}
	}
	if r := e.get(o.origin, "/p", "Range: bytes=3-4"); r.body != "de" {
		t.Errorf("range inside: %q", r.body)
	}
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
}

// RFC 9111 section 3.4: two partial responses of one representation
// (same strong validator) combine; the whole body is then served from
// the cache.
func TestRFC9111_3_4_PartialsCombine(t *testing.T) {
	e, o := segEnv(t)
	e.get(o.origin, "/c", "Range: bytes=0-9")   // segments 0-2 (bytes 0-11)
	e.get(o.origin, "/c", "Range: bytes=12-19") // segments 3-4
	sent := o.sent.Load()
	r := e.get(o.origin, "/c")
	if r.code != StatusHit || r.status != 200 || r.body != segBody {
		t.Fatalf("combined: %v %d %q", r.code, r.status, r.body)
	}
	if o.sent.Load() != sent || o.count.Load() != 2 {
		t.Errorf("the origin sent %d more bytes in %d requests for a combined object", o.sent.Load()-sent, o.count.Load())
	}
	if sent != 20 {
		t.Errorf("the origin sent %d bytes for two partials of a 20-byte body", sent)
	}
}

// A hit on a partly stored object fetches only the missing segments, with
// one aligned Range and If-Range.
func TestSegmentsMissingAreFetchedAlone(t *testing.T) {
	e, o := segEnv(t)
	e.get(o.origin, "/m", "Range: bytes=0-3")
	e.get(o.origin, "/m", "Range: bytes=16-19")
	before := o.sent.Load()
	tr := &trace.Trace{}
	rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("GET", "/m"), e.pol, tr)
	if err != nil {
		t.Fatal(err)
	}
	r := readReply(rep)
	if r.body != segBody || r.readErr != nil {
		t.Fatalf("got %q %v", r.body, r.readErr)
	}
	if cs := r.get("Cache-Status"); r.code != StatusMiss || !strings.Contains(cs, "fwd=partial") {
		t.Errorf("a reply completed from the origin: %v, Cache-Status %q (RFC 9211 fwd=partial)", r.code, cs)
	}
	last := o.last()
	if got := last.Header.Get("Range"); got != "bytes=4-15" || last.Header.Get("If-Range") != `"v1"` {
		t.Errorf("fetch of the missing segments: Range %q If-Range %q", got, last.Header.Get("If-Range"))
	}
	if n := o.sent.Load() - before; n != 12 {
		t.Errorf("origin sent %d bytes, want the 12 missing", n)
	}
	if got := tr.Find("cache-segments"); got != "hit=2 fetches=1 stored=3 origin-bytes=12" {
		t.Errorf("trace: %q", got)
	}
}

// RFC 9110 sections 14.1.2 and 14.6: several ranges, suffix and open
// ranges are served from stored segments; an unsatisfiable range is a 416
// with the length.
func TestRFC9110_14_RangesServedFromSegments(t *testing.T) {
	e, o := segEnv(t)
	e.get(o.origin, "/r", "Range: bytes=0-19")
	tests := []struct {
		rng, cr, body string
		status        int
	}{
		{"bytes=-3", "bytes 17-19/20", "rst", 206},
		{"bytes=15-", "bytes 15-19/20", "pqrst", 206},
		{"bytes=30-", "bytes */20", "", 416},
		{"bytes=-0", "bytes */20", "", 416},
	}
	for _, tt := range tests {
		r := e.get(o.origin, "/r", "Range: "+tt.rng)
		if r.status != tt.status || r.body != tt.body || r.get("Content-Range") != tt.cr || r.code != StatusHit {
			t.Errorf("%s: %v %d %q %q", tt.rng, r.code, r.status, r.body, r.get("Content-Range"))
		}
	}
	r := e.get(o.origin, "/r", "Range: bytes=0-1,5-6,-2")
	checkMultipart(t, r, "text/plain", []string{"bytes 0-1/20", "bytes 5-6/20", "bytes 18-19/20"}, []string{"ab", "fg", "st"})
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests", n)
	}
}

// RFC 9110 section 14.6: several ranges of a whole stored object make a
// multipart/byteranges reply.
func TestRFC9110_14_6_MultipartFromWholeObject(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Content-Type: text/html"}, body: "0123456789"})
	e.get(o, "/w")
	r := e.get(o, "/w", "Range: bytes=0-1, 4-5")
	checkMultipart(t, r, "text/html", []string{"bytes 0-1/10", "bytes 4-5/10"}, []string{"01", "45"})
	if r.code != StatusHit {
		t.Errorf("status %v", r.code)
	}
}

func checkMultipart(t *testing.T, r result, ctype string, ranges, parts []string) {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.get("Content-Type"))
	if r.status != 206 || err != nil || mt != "multipart/byteranges" {
		t.Fatalf("got %d %q", r.status, r.get("Content-Type"))
	}
	if cl := r.get("Content-Length"); cl != "" && cl != strconv.Itoa(len(r.body)) {
		t.Errorf("Content-Length %s for %d bytes", cl, len(r.body))
	}
	mr := multipart.NewReader(strings.NewReader(r.body), params["boundary"])
	for i := range parts {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v in %q", i, err, r.body)
		}
		buf := make([]byte, 64)
		n, _ := p.Read(buf)
		if got := string(buf[:n]); got != parts[i] || p.Header.Get("Content-Range") != ranges[i] || p.Header.Get("Content-Type") != ctype {
			t.Errorf("part %d: %q %q %q", i, got, p.Header.Get("Content-Range"), p.Header.Get("Content-Type"))
		}
	}
	if _, err := mr.NextPart(); err == nil {
		t.Error("more parts than asked")
	}
}

// RFC 9110 section 13.1.5: an If-Range that does not match the stored
// validator gets the whole body (200), from the segments.
func TestRFC9110_13_1_5_IfRangeMismatchServesWhole(t *testing.T) {
	e, o := segEnv(t)
	e.get(o.origin, "/i", "Range: bytes=0-19")
	r := e.get(o.origin, "/i", "Range: bytes=0-3", `If-Range: "v0"`)
	if r.status != 200 || r.body != segBody || r.code != StatusHit {
		t.Fatalf("got %v %d %q", r.code, r.status, r.body)
	}
	r = e.get(o.origin, "/i", "Range: bytes=0-3", `If-Range: "v1"`)
	if r.status != 206 || r.body != "abcd" {
		t.Fatalf("matching If-Range: %d %q", r.status, r.body)
	}
}

// A segment of another version is a miss: when the origin's object has
// changed, the If-Range fetch of a missing segment gets a 200, the read
// fails rather than mixing versions, and the head goes.
func TestSegmentsOfAnotherVersionDoNotMix(t *testing.T) {
	e := newEnv(t)
	e.pol.SegmentSize, e.pol.SegmentThreshold = 4, 16
	var v atomic.Int32
	body := func() string {
		if v.Load() == 0 {
			return segBody
		}
		return strings.ToUpper(segBody)
	}
	etag := func() string { return `"v` + strconv.Itoa(int(v.Load())) + `"` }
	o := newRangeOrigin(body, etag)
	e.get(o.origin, "/v", "Range: bytes=0-7")
	v.Store(1)
	r := e.get(o.origin, "/v")
	if r.readErr == nil || strings.Contains(r.body, "IJ") {
		t.Fatalf("a read across versions gave %q, %v", r.body, r.readErr)
	}
	r = e.get(o.origin, "/v")
	if r.body != strings.ToUpper(segBody) || r.readErr != nil {
		t.Fatalf("after the change: %v %q %v", r.code, r.body, r.readErr)
	}
}

// A full response above the threshold is stored in segments (each its
// own entry) and served from them.
func TestLargeResponseStoredInSegments(t *testing.T) {
	e, o := segEnv(t)
	tr := &trace.Trace{}
	rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("GET", "/big"), e.pol, tr)
	if err != nil {
		t.Fatal(err)
	}
	if r := readReply(rep); r.body != segBody || r.status != 200 {
		t.Fatalf("miss: %d %q", r.status, r.body)
	}
	if got := tr.Find("cache-store"); got != "stored in segments of 4 bytes" {
		t.Errorf("trace cache-store %q", got)
	}
	if n := e.store.Stats().Objects; n != 6 {
		t.Errorf("%d entries stored, want a head and 5 segments", n)
	}
	r := e.get(o.origin, "/big", "Range: bytes=6-9")
	if r.code != StatusHit || r.body != "ghij" {
		t.Fatalf("hit: %v %q", r.code, r.body)
	}
	if o.count.Load() != 1 {
		t.Errorf("origin saw %d requests", o.count.Load())
	}
}

// A response without a validator is neither combined from partials nor
// segmented (its segments could mix versions): the partial is not stored.
func TestPartialWithoutValidatorNotStored(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if req.Header.Has("Range") {
			return answer{status: 206, headers: []string{"Cache-Control: max-age=60", "Content-Range: bytes 0-3/10"}, body: "0123"}
		}
		return answer{headers: []string{"Cache-Control: max-age=60"}, body: "0123456789"}
	})
	r := e.get(o, "/nv", "Range: bytes=0-3")
	if r.status != 206 || r.body != "0123" || o.count.Load() != 2 {
		t.Fatalf("got %d %q after %d requests, want the client's request forwarded", r.status, r.body, o.count.Load())
	}
	if n := e.store.Stats().Objects; n != 0 {
		t.Errorf("%d objects stored", n)
	}
}

// A body of unknown length too large for the store streams through
// unstored; the next miss asks for the first segment, learns the length
// from the 206 and stores the object in segments, so that no size the
// origin sends is refused.
func TestUnknownLengthTooLargeIsSegmentedNextTime(t *testing.T) {
	store := memory.New(memory.Options{Capacity: 64 << 10}) // takes objects up to 8 KiB
	t.Cleanup(func() { store.Close() })
	c := New(store, Options{})
	pol := &Policy{Enabled: true, SegmentSize: 4 << 10}
	full := strings.Repeat("0123456789abcdef", 1<<10) // 16 KiB
	ro := newRangeOrigin(func() string { return full }, func() string { return `"u1"` })
	chunked := newOrigin(func(req *httphead.Request, n int) answer {
		a := ro.handler(req, n)
		if a.status == 0 {
			a.lieCL = -1 // sent chunked: the length is not known up front
		}
		return a
	})
	get := func() result {
		t.Helper()
		rep, err := c.Serve(FuncOrigin(t.Context(), chunked.fetch), request("GET", "/chunked"), pol, nil)
		if err != nil {
			t.Fatal(err)
		}
		r := readReply(rep)
		if r.body != full || r.readErr != nil {
			t.Fatalf("got %d bytes, %v", len(r.body), r.readErr)
		}
		return r
	}
	get()
	c.Drain(t.Context())
	if r := get(); chunked.reqs[1].Header.Get("Range") != "bytes=0-4095" || r.status != 200 {
		t.Fatalf("second miss asked for %q and got %d", chunked.reqs[1].Header.Get("Range"), r.status)
	}
	if got := chunked.last().Header.Get("Range"); got != "bytes=4096-16383" {
		t.Errorf("the rest was asked as %q", got)
	}
	n := chunked.count.Load()
	if r := get(); r.code != StatusHit || chunked.count.Load() != n {
		t.Errorf("third request: %v after %d origin requests", r.code, chunked.count.Load()-n)
	}
}

// RFC 9111 section 4.3.4: a stale segmented object revalidated by a 304
// keeps its segments; a Range request on it asks for the aligned
// segments with the validator, so a changed object comes back as a 206
// of its new version.
func TestRFC9111_4_3_4_SegmentedObjectRevalidated(t *testing.T) {
	e, o := segEnv(t)
	e.get(o.origin, "/s", "Range: bytes=0-19")
	e.clock.Advance(time.Hour)
	sent := o.sent.Load()
	r := e.get(o.origin, "/s", "Range: bytes=4-7")
	if r.code != StatusRevalidated || r.body != "efgh" || o.sent.Load() != sent {
		t.Fatalf("got %v %q, origin sent %d bytes", r.code, r.body, o.sent.Load()-sent)
	}
	if last := o.last(); last.Header.Get("If-None-Match") != `"v1"` || last.Header.Get("Range") != "bytes=4-7" {
		t.Errorf("revalidation asked with If-None-Match %q Range %q", last.Header.Get("If-None-Match"), last.Header.Get("Range"))
	}
	if r := e.get(o.origin, "/s"); r.code != StatusHit || r.body != segBody {
		t.Errorf("after revalidation: %v %q", r.code, r.body)
	}
}

// Several ranges far apart on a miss fetch the segments of each, not
// everything between them.
func TestSeveralRangesOnAMissFetchOnlyTheirSegments(t *testing.T) {
	e, o := segEnv(t)
	r := e.get(o.origin, "/far", "Range: bytes=1-2, 17-18")
	checkMultipart(t, r, "text/plain", []string{"bytes 1-2/20", "bytes 17-18/20"}, []string{"bc", "rs"})
	if n := o.sent.Load(); n != 8 {
		t.Errorf("origin sent %d bytes for two ranges in two segments", n)
	}
	if got := o.reqs[0].Header.Get("Range"); got != "bytes=0-3" {
		t.Errorf("first origin request asked for %q", got)
	}
}

// A client that leaves during a segmented miss keeps the segments that
// arrived whole; the next request fetches only the rest.
func TestSegmentsStoredBeforeTheClientLeftAreKept(t *testing.T) {
	e, o := segEnv(t)
	rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("GET", "/left"), e.pol, nil)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 6)
	if n, err := io.ReadFull(rep.Body, buf); n != 6 || err != nil || string(buf) != "abcdef" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
	rep.Close()
	r := e.get(o.origin, "/left")
	if r.body != segBody || r.readErr != nil {
		t.Fatalf("got %q %v", r.body, r.readErr)
	}
	if got := o.last().Header.Get("Range"); got != "bytes=4-19" {
		t.Errorf("the rest was asked as %q, want the segments after the first", got)
	}
}

// RFC 9110 section 14.1.2: a Range list is resolved against the length;
// unsatisfiable members are dropped, overlapping ones coalesce, a
// malformed member or too many ranges make the field ignored.
func TestRFC9110_14_1_2_ParseRanges(t *testing.T) {
	tests := []struct {
		v    string
		ok   bool
		want []byteRange
	}{
		{"bytes=0-1,5-6", true, []byteRange{{0, 2}, {5, 7}}},
		{"bytes=5-6, 0-1", true, []byteRange{{5, 7}, {0, 2}}},
		{"bytes=0-4,3-8", true, []byteRange{{0, 9}}},
		{"bytes=0-1,6-7,1-6", true, []byteRange{{0, 8}}},
		{"bytes=-2,0-0", true, []byteRange{{8, 10}, {0, 1}}},
		{"bytes=20-30,0-0", true, []byteRange{{0, 1}}},
		{"bytes=20-30,40-", true, nil},
		{"bytes=0-1,x-2", false, nil},
		{"bytes=3-1", false, nil},
		{"bytes=", false, nil},
		{"lines=0-1", false, nil},
		{"bytes=" + strings.Repeat("0-0,", maxRanges) + "0-0", false, nil},
	}
	for _, tt := range tests {
		got, ok := parseRanges([]byte(tt.v), 10)
		if ok != tt.ok || len(got) != len(tt.want) {
			t.Errorf("%q: %v %v, want %v %v", tt.v, got, ok, tt.want, tt.ok)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("%q: %v, want %v", tt.v, got, tt.want)
			}
		}
	}
}

// A body of known length that the store will not take whole (its
// per-object limit) is stored in segments instead of passing.
func TestTooLargeForTheStoreIsStoredInSegments(t *testing.T) {
	store := memory.New(memory.Options{Capacity: 64 << 10}) // takes objects up to 8 KiB
	t.Cleanup(func() { store.Close() })
	c := New(store, Options{})
	pol := &Policy{Enabled: true, SegmentSize: 4 << 10}
	full := strings.Repeat("0123456789abcdef", 768) // 12 KiB
	o := newRangeOrigin(func() string { return full }, func() string { return `"t1"` })
	for i, want := range []Status{StatusMiss, StatusHit} {
		rep, err := c.Serve(FuncOrigin(t.Context(), o.fetch), request("GET", "/t"), pol, nil)
		if err != nil {
			t.Fatal(err)
		}
		if r := readReply(rep); r.body != full || r.code != want {
			t.Fatalf("request %d: %v, %d bytes, %v", i, r.code, len(r.body), r.readErr)
		}
	}
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests", n)
	}
}

// A partial whose validator is not stored (no-cache="ETag" drops it from
// the stored fields) is not stored: nothing would keep its versions apart.
func TestPartialWhoseValidatorIsNotStoredIsNotStored(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{status: 206, headers: []string{`Cache-Control: max-age=60, no-cache="ETag"`, `ETag: "x"`, "Content-Range: bytes 0-3/10"}, body: "0123"}
	})
	r := e.get(o, "/nc", "Range: bytes=0-3")
	if r.status != 206 || r.body != "0123" || r.readErr != nil {
		t.Fatalf("got %d %q %v", r.status, r.body, r.readErr)
	}
	if n := e.store.Stats().Objects; n != 0 {
		t.Errorf("%d objects stored", n)
	}
}

// A failed fetch of missing segments releases its claims: a reader
// waiting for them fetches at once instead of waiting out the lock
// timeout.
func TestFailedSegmentFetchReleasesItsClaims(t *testing.T) {
	e, o := segEnv(t)
	e.get(o.origin, "/f", "Range: bytes=0-3")
	down := newOrigin(func(*httphead.Request, int) answer { return answer{err: errOriginDown} })
	if r := e.get(down, "/f"); r.readErr == nil {
		t.Fatal("a read whose segments could not be fetched ended cleanly")
	}
	e.c.segMu.Lock()
	n := len(e.c.segFlights)
	e.c.segMu.Unlock()
	if n != 0 {
		t.Errorf("%d segments still claimed after the fetch failed", n)
	}
}
