package e2e

import (
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testorigin"
)

// hugeSize is the object of the large-object tests: 2 GiB, as a node
// must take objects of any size through a small memory tier. Under the
// race detector (which runs the same tests again for the concurrency, and
// makes the copying several times slower) it is 256 MiB, unless
// OUTPOST_E2E_HUGE=1.
var hugeSize = func() int64 {
	if raceEnabled && os.Getenv("OUTPOST_E2E_HUGE") != "1" {
		return 256 << 20
	}
	return 2 << 30
}()

// patternOrigin serves size bytes of the test pattern on every path, with
// an ETag, Range and If-Range (http.ServeContent), generating the bytes as
// it sends them and counting them.
type patternOrigin struct {
	addr string
	sent atomic.Int64
	reqs atomic.Int64
	last atomic.Value // the last Range asked for
}

func newPatternOrigin(t *testing.T, size int64) *patternOrigin {
	o := &patternOrigin{}
	o.addr = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		o.reqs.Add(1)
		o.last.Store(r.Header.Get("Range"))
		w.Header().Set("Cache-Control", "public, max-age=600")
		w.Header().Set("ETag", `"pattern-v1"`)
		w.Header().Set("Content-Type", "application/octet-stream")
		http.ServeContent(countingWriter{w, &o.sent}, r, "", time.Time{}, testorigin.NewPattern(size))
	}))
	return o
}

type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.ResponseWriter.Write(p)
	c.n.Add(int64(n))
	return n, err
}

// tieredEdge starts a node caching everything with a 64 MiB memory tier
// in front of a disk tier big enough for size bytes.
func tieredEdge(t *testing.T, o *patternOrigin, size int64) *edge {
	disk := size + size/4 + 64<<20
	return startEdge(t, cachedRoute+fmt.Sprintf("\nstorage:\n  memory: {size: 64MiB}\n  disk: {path: %q, size: %d}\n", t.TempDir(), disk),
		"{{ORIGIN}}", o.addr)
}

var bigClient = &http.Client{Timeout: 5 * time.Minute, Transport: &http.Transport{DisableCompression: true}}

// fetchPattern GETs url with the given Range (or none) and checks that
// the body is the pattern from off for n bytes.
func fetchPattern(t *testing.T, url, rng string, off, n int64) *http.Response {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := bigClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := testorigin.CheckPattern(resp.Body, off, n); err != nil {
		t.Fatalf("GET %s %s: %d: %v", url, rng, resp.StatusCode, err)
	}
	return resp
}

// Issue 10: an object far larger than the memory tier streams through a
// node with memory and disk tiers, stored in segments, and the second
// request is a hit served from disk.
func TestHugeObjectStreamsThroughTiersAndHitsFromDisk(t *testing.T) {
	o := newPatternOrigin(t, hugeSize)
	e := tieredEdge(t, o, hugeSize)
	start := time.Now()
	resp := fetchPattern(t, e.URL+"/huge", "", 0, hugeSize)
	t.Logf("%d MiB miss in %v", hugeSize>>20, time.Since(start))
	if resp.StatusCode != 200 || o.sent.Load() != hugeSize {
		t.Fatalf("miss: %d, origin sent %d bytes", resp.StatusCode, o.sent.Load())
	}
	start = time.Now()
	resp = fetchPattern(t, e.URL+"/huge", "", 0, hugeSize)
	t.Logf("%d MiB hit in %v", hugeSize>>20, time.Since(start))
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") {
		t.Errorf("second request: Cache-Status %q", cs)
	}
	if n := o.sent.Load(); n != hugeSize || o.reqs.Load() != 1 {
		t.Errorf("origin sent %d bytes in %d requests, want %d in one", n, o.reqs.Load(), hugeSize)
	}
	if mem := metric(t, e, `outpost_storage_bytes{tier="memory"}`); mem > 64<<20 {
		t.Errorf("memory tier holds %v bytes", mem)
	}
	if disk := metric(t, e, `outpost_storage_bytes{tier="disk"}`); disk < float64(hugeSize) {
		t.Errorf("disk tier holds %v bytes, less than the object", disk)
	}
}

// Issue 10: a range in the middle of an uncached large object fetches
// only the segments holding it, aligned, and a second request for it is
// a hit; an overlapping range fetches only the segments still missing.
func TestRangeOfHugeUncachedObjectFetchesOnlyItsSegments(t *testing.T) {
	o := newPatternOrigin(t, hugeSize)
	e := tieredEdge(t, o, hugeSize)
	const seg = 1 << 20
	mid := hugeSize/2 + 12345
	rng := fmt.Sprintf("bytes=%d-%d", mid, mid+3*seg-1)
	resp := fetchPattern(t, e.URL+"/huge", rng, mid, 3*seg)
	if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", mid, mid+3*seg-1, hugeSize) {
		t.Fatalf("got %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	first := mid / seg * seg
	if got, want := o.last.Load(), fmt.Sprintf("bytes=%d-%d", first, first+4*seg-1); got != want {
		t.Errorf("origin asked for %v, want %s", got, want)
	}
	if n := o.sent.Load(); n != 4*seg {
		t.Fatalf("origin sent %d bytes for a 3 MiB range, want the 4 segments holding it", n)
	}
	resp = fetchPattern(t, e.URL+"/huge", rng, mid, 3*seg)
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "hit") || o.sent.Load() != 4*seg {
		t.Errorf("same range again: Cache-Status %q, origin sent %d bytes", cs, o.sent.Load())
	}
	// Two segments further on: two stored, two fetched.
	resp = fetchPattern(t, e.URL+"/huge", fmt.Sprintf("bytes=%d-%d", first+2*seg, first+6*seg-1), first+2*seg, 4*seg)
	if n := o.sent.Load(); n != 6*seg {
		t.Errorf("origin sent %d bytes in all, want 6 segments", n)
	}
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "fwd=partial") {
		t.Errorf("a range completed from the origin: Cache-Status %q", cs)
	}
}

// Issue 9, RFC 9111 sections 3.3 and 3.4, RFC 9110 sections 13.1.5 and
// 14: through a node, partial responses are stored and combine, and
// several ranges, suffix ranges and If-Range are answered from them.
func TestPartialResponsesCombineThroughTheNode(t *testing.T) {
	const size = 3 << 20
	o := newPatternOrigin(t, size)
	e := startEdge(t, cachedRoute, "{{ORIGIN}}", o.addr)
	fetchPattern(t, e.URL+"/obj", "bytes=0-1048575", 0, 1<<20)
	fetchPattern(t, e.URL+"/obj", "bytes=1048576-", 1<<20, 2<<20)
	if n := o.sent.Load(); n != size {
		t.Fatalf("origin sent %d bytes for two partials", n)
	}
	resp := fetchPattern(t, e.URL+"/obj", "", 0, size)
	if resp.StatusCode != 200 || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
		t.Errorf("combined: %d %q", resp.StatusCode, resp.Header.Get("Cache-Status"))
	}
	resp = fetchPattern(t, e.URL+"/obj", "bytes=-100", size-100, 100)
	if resp.StatusCode != 206 {
		t.Errorf("suffix: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", e.URL+"/obj", nil)
	req.Header.Set("Range", "bytes=0-1048575")
	req.Header.Set("If-Range", `"pattern-v0"`)
	resp, err := bigClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if err := testorigin.CheckPattern(resp.Body, 0, size); err != nil || resp.StatusCode != 200 {
		t.Errorf("If-Range mismatch: %d %v, want the whole body", resp.StatusCode, err)
	}
	resp.Body.Close()
	resp, body := get(t, e.URL+"/obj", "Range", "bytes=0-9,2097152-2097161")
	_, params, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	mr := multipart.NewReader(strings.NewReader(body), params["boundary"])
	for i, off := range []int64{0, 2097152} {
		p, err := mr.NextPart()
		if err != nil {
			t.Fatalf("multipart %d: %v (%d %q)", i, err, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if err := testorigin.CheckPattern(io.LimitReader(p, 10), off, 10); err != nil {
			t.Errorf("part %d: %v", i, err)
		}
	}
	if n := o.sent.Load(); n != size || o.reqs.Load() != 2 {
		t.Errorf("origin sent %d bytes in %d requests, want %d in 2", n, o.reqs.Load(), size)
	}
}

// Issue 10: concurrent requests for a large uncached object collapse per
// segment: the origin sends it once, and every client gets all of it.
func TestConcurrentRequestsForALargeObjectFetchEachSegmentOnce(t *testing.T) {
	const size = 48 << 20
	o := newPatternOrigin(t, size)
	e := tieredEdge(t, o, size)
	const clients = 8
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		go func() {
			resp, err := bigClient.Get(e.URL + "/shared")
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			errs <- testorigin.CheckPattern(resp.Body, 0, size)
		}()
	}
	for i := 0; i < clients; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := o.sent.Load(); n != size {
		t.Errorf("origin sent %d bytes in %d requests (last Range %v) for %d clients, want %d", n, o.reqs.Load(), o.last.Load(), clients, size)
	}
}
