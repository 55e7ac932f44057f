package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// decode undoes a content coding in a test.
func decode(t testing.TB, coding string, body []byte) []byte {
	t.Helper()
	var r io.Reader
	switch coding {
	case "":
		return body
	case "br":
		r = brotli.NewReader(bytes.NewReader(body))
	case "gzip":
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	case "zstd":
		zr, err := zstd.NewReader(bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer zr.Close()
		r = zr
	default:
		t.Fatalf("unknown coding %q", coding)
	}
	plain, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("%s body: %v", coding, err)
	}
	return plain
}

// countingOrigin serves fixed bodies by path and counts requests per path.
type countingOrigin struct {
	addr  string
	hits  map[string]*atomic.Int64
	inm   atomic.Value // the last If-None-Match received
	pages map[string]page
}

type page struct {
	contentType, cacheControl, etag string
	body                            []byte
}

func startCountingOrigin(t *testing.T, pages map[string]page) *countingOrigin {
	o := &countingOrigin{hits: map[string]*atomic.Int64{}, pages: pages}
	for p := range pages {
		o.hits[p] = &atomic.Int64{}
	}
	o.addr = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pg, ok := o.pages[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		o.hits[r.URL.Path].Add(1)
		o.inm.Store(r.Header.Get("If-None-Match"))
		w.Header().Set("Content-Type", pg.contentType)
		w.Header().Set("Cache-Control", pg.cacheControl)
		if pg.etag != "" {
			w.Header().Set("ETag", pg.etag)
			if r.Header.Get("If-None-Match") == pg.etag {
				w.WriteHeader(304)
				return
			}
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(pg.body)))
		w.Write(pg.body)
	}))
	return o
}

const plainRoute = `
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: all
    upstream: origin
`

// TestCompressionOnByDefaultOncePerCoding: a plain config compresses a
// JSON page for each coding a client prefers, stores each variant once,
// and serves hits, ranges and revalidations from the stored coded bytes.
func TestCompressionOnByDefaultOncePerCoding(t *testing.T) {
	page1 := bytes.Repeat([]byte(`{"name":"left-pad","dist":{"tarball":"https://registry.example/left-pad/-/left-pad-1.3.0.tgz"}},`), 100)
	o := startCountingOrigin(t, map[string]page{
		"/index.json": {"application/json", "max-age=60", `"v1"`, page1},
		"/logo.png":   {"image/png", "max-age=60", `"p"`, bytes.Repeat([]byte("png"), 1000)},
		"/small.txt":  {"text/plain", "max-age=60", "", []byte("tiny")},
		"/keep.txt":   {"text/plain", "max-age=60, no-transform", "", bytes.Repeat([]byte("k"), 4096)},
	})
	e := startEdge(t, plainRoute, "{{ORIGIN}}", o.addr)
	for _, tt := range []struct{ ae, coding string }{
		{"gzip, deflate, br, zstd", "br"},
		{"gzip", "gzip"},
		{"zstd, gzip;q=0.5", "zstd"},
		{"", ""},
		{"gzip;q=1, br;q=0.5", "gzip"}, // weights decide (RFC 9110 section 12.5.3)
		{"BR", "br"},
	} {
		for round := 0; round < 2; round++ {
			resp, body := get(t, e.URL+"/index.json", "Accept-Encoding", tt.ae)
			if got := resp.Header.Get("Content-Encoding"); got != tt.coding {
				t.Fatalf("AE %q: Content-Encoding %q, want %q", tt.ae, got, tt.coding)
			}
			if !strings.Contains(resp.Header.Get("Vary"), "Accept-Encoding") {
				t.Fatalf("AE %q: Vary %q", tt.ae, resp.Header.Get("Vary"))
			}
			wantTag := `"v1"`
			if tt.coding != "" {
				wantTag = `"v1-` + tt.coding + `"` // RFC 9110 section 8.8.3
			}
			if resp.Header.Get("ETag") != wantTag {
				t.Fatalf("AE %q: ETag %s, want %s", tt.ae, resp.Header.Get("ETag"), wantTag)
			}
			if !bytes.Equal(decode(t, tt.coding, []byte(body)), page1) {
				t.Fatalf("AE %q: body does not decode to the page", tt.ae)
			}
			if tt.coding != "" && len(body) > len(page1)/4 {
				t.Fatalf("AE %q: %d bytes coded from %d", tt.ae, len(body), len(page1))
			}
		}
	}
	// One origin request per coding: br, gzip, zstd, identity.
	if n := o.hits["/index.json"].Load(); n != 4 {
		t.Fatalf("origin served the page %d times, want 4 (one per stored coding)", n)
	}
	// A range asked of a miss: the fill's coded length is not known
	// while it streams, so the whole coded body comes (RFC 9110 section
	// 14.2 lets a server ignore Range), and it decodes.
	resp, whole := get(t, e.URL+"/index.json?fresh", "Accept-Encoding", "br", "Range", "bytes=0-9")
	if resp.StatusCode == 206 && resp.Header.Get("Content-Range") == "" || resp.StatusCode == 200 && !bytes.Equal(decode(t, "br", []byte(whole)), page1) {
		t.Fatalf("range on a miss: %d %q", resp.StatusCode, resp.Header.Get("Content-Range"))
	}
	// A range of the coded variant is a range of its coded bytes
	// (RFC 9110 section 14.1.1).
	_, full := get(t, e.URL+"/index.json", "Accept-Encoding", "br")
	resp, part := get(t, e.URL+"/index.json", "Accept-Encoding", "br", "Range", "bytes=10-59")
	if resp.StatusCode != 206 || resp.Header.Get("Content-Encoding") != "br" || part != full[10:60] ||
		resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 10-59/%d", len(full)) {
		t.Fatalf("range of br variant: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Range"))
	}
	if resp, _ := get(t, e.URL+"/index.json", "Accept-Encoding", "br", "If-None-Match", `"v1-br"`); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match with the br tag: %d, want 304", resp.StatusCode)
	}
	for path, why := range map[string]string{"/logo.png": "compressed type", "/small.txt": "below min_size", "/keep.txt": "no-transform"} {
		resp, _ := get(t, e.URL+path, "Accept-Encoding", "br, gzip")
		if ce := resp.Header.Get("Content-Encoding"); ce != "" {
			t.Errorf("%s (%s): Content-Encoding %q, want none", path, why, ce)
		}
	}
}

// TestCompressedVariantRevalidatesWithTheOriginsTag: a stale coded variant
// is revalidated with the tag the origin gave, and keeps its own after the
// 304.
func TestCompressedVariantRevalidatesWithTheOriginsTag(t *testing.T) {
	o := startCountingOrigin(t, map[string]page{
		"/p.html": {"text/html", "max-age=0, must-revalidate", `"r1"`, bytes.Repeat([]byte("<p>hello</p>"), 200)},
	})
	e := startEdge(t, plainRoute, "{{ORIGIN}}", o.addr)
	get(t, e.URL+"/p.html", "Accept-Encoding", "gzip")
	resp, body := get(t, e.URL+"/p.html", "Accept-Encoding", "gzip")
	if got := o.inm.Load(); got != `"r1"` {
		t.Fatalf("origin got If-None-Match %q, want its own tag", got)
	}
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"r1-gzip"` || resp.Header.Get("Content-Encoding") != "gzip" ||
		!strings.Contains(resp.Header.Get("Cache-Status"), "fwd-status=304") {
		t.Fatalf("revalidated: %d ETag %s CE %q Cache-Status %q", resp.StatusCode, resp.Header.Get("ETag"),
			resp.Header.Get("Content-Encoding"), resp.Header.Get("Cache-Status"))
	}
	if !bytes.Equal(decode(t, "gzip", []byte(body)), bytes.Repeat([]byte("<p>hello</p>"), 200)) {
		t.Fatal("revalidated body does not decode")
	}
}

func TestCompressionCanBeTurnedOffPerRoute(t *testing.T) {
	o := startCountingOrigin(t, map[string]page{
		"/a.txt": {"text/plain", "max-age=60", "", bytes.Repeat([]byte("a"), 4096)},
	})
	e := startEdge(t, plainRoute+"    compress: {enabled: false}\n", "{{ORIGIN}}", o.addr)
	if resp, _ := get(t, e.URL+"/a.txt", "Accept-Encoding", "br"); resp.Header.Get("Content-Encoding") != "" || resp.Header.Get("Vary") != "" {
		t.Fatalf("compression off: CE %q Vary %q", resp.Header.Get("Content-Encoding"), resp.Header.Get("Vary"))
	}
}
