package demo

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

func do(t *testing.T, h http.Handler, method, target string, header http.Header, body string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var linkRE = regexp.MustCompile(`href="(/packages/[0-9a-f]{2}/[0-9a-f]{2}/[^"#]+)#sha256=([0-9a-f]{64})"`)

var pageTests = []struct {
	name      string
	path      string
	status    int
	keys      string
	contains  string
	redirect  string
	cacheable bool
}{
	{name: "simple index lists projects", path: "/simple/", status: 200, keys: "simple-index all-html", contains: `<a href="/simple/left-pad/">left-pad</a>`, cacheable: true},
	{name: "project page links files", path: "/simple/requests/", status: 200, keys: "project/requests all-html", contains: "requests-2.32.3.tar.gz</a>", cacheable: true},
	{name: "JSON API describes the project", path: "/pypi/numpy/json", status: 200, keys: "project/numpy all-json", contains: `"version": "2.1.0"`, cacheable: true},
	{name: "unknown project is a cacheable 404 tagged with its key", path: "/simple/nope/", status: 404, keys: "project/nope", cacheable: true},
	{name: "unnormalized name redirects", path: "/simple/Left_Pad/", status: 301, redirect: "/simple/left-pad/"},
	{name: "missing slash redirects", path: "/simple/flask", status: 301, redirect: "/simple/flask/"},
	{name: "invalid name is 404", path: "/simple/-bad-/", status: 404},
	{name: "unknown file is 404", path: "/packages/00/00/nothing.tar.gz", status: 404},
	{name: "unknown path is 404", path: "/admin", status: 404},
}

func TestPagesCarryIndexCacheHeaders(t *testing.T) {
	h := Handler()
	for _, tt := range pageTests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, h, "GET", tt.path, nil, "")
			body := readBody(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if got := resp.Header.Get("Location"); got != tt.redirect {
				t.Errorf("Location %q, want %q", got, tt.redirect)
			}
			if got := resp.Header.Get("Surrogate-Key"); got != tt.keys {
				t.Errorf("Surrogate-Key %q, want %q", got, tt.keys)
			}
			if !strings.Contains(body, tt.contains) {
				t.Errorf("body lacks %q:\n%s", tt.contains, body)
			}
			if !tt.cacheable {
				return
			}
			if got := resp.Header.Get("Cache-Control"); got != "max-age=60, public" {
				t.Errorf("Cache-Control %q", got)
			}
			if got := resp.Header.Get("Surrogate-Control"); got != "max-age=86400, stale-while-revalidate=300, stale-if-error=86400" {
				t.Errorf("Surrogate-Control %q", got)
			}
			if tt.status == 200 && resp.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
		})
	}
}

func TestPageETagAnswersConditionalRequests(t *testing.T) {
	h := Handler()
	etag := do(t, h, "GET", "/simple/flask/", nil, "").Header.Get("ETag")
	resp := do(t, h, "GET", "/simple/flask/", http.Header{"If-None-Match": {etag}}, "")
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("status %d, want 304", resp.StatusCode)
	}
}

func TestFilesAreImmutableRealArchivesMatchingTheirDigest(t *testing.T) {
	h := Handler()
	page := readBody(t, do(t, h, "GET", "/simple/left-pad/", nil, ""))
	links := linkRE.FindAllStringSubmatch(page, -1)
	if len(links) != 3 {
		t.Fatalf("found %d file links, want 3:\n%s", len(links), page)
	}
	for _, link := range links {
		path, digest := link[1], link[2]
		resp := do(t, h, "GET", path, nil, "")
		body := readBody(t, resp)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
		if sum := sha256.Sum256([]byte(body)); hex.EncodeToString(sum[:]) != digest {
			t.Errorf("%s: body does not match the digest in the page", path)
		}
		if len(body) < minFileSize || len(body) > maxFileSize+4096 {
			t.Errorf("%s: %d bytes", path, len(body))
		}
		if got := resp.Header.Get("Cache-Control"); got != "max-age=31536000, immutable, public" {
			t.Errorf("Cache-Control %q", got)
		}
		if resp.Header.Get("Last-Modified") == "" || resp.Header.Get("ETag") == "" {
			t.Errorf("validators missing: %v", resp.Header)
		}
		checkArchive(t, body)

		for _, cond := range []http.Header{
			{"If-None-Match": {resp.Header.Get("ETag")}},
			{"If-Modified-Since": {resp.Header.Get("Last-Modified")}},
		} {
			if r := do(t, h, "GET", path, cond, ""); r.StatusCode != http.StatusNotModified {
				t.Errorf("%s with %v: status %d, want 304", path, cond, r.StatusCode)
			}
		}
		if r := do(t, h, "GET", path, http.Header{"Range": {"bytes=0-99"}}, ""); r.StatusCode != http.StatusPartialContent || readBody(t, r) != body[:100] {
			t.Errorf("%s: range request got status %d", path, r.StatusCode)
		}
	}
}

func checkArchive(t *testing.T, data string) {
	t.Helper()
	zr, err := gzip.NewReader(strings.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var names []string
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("archive: %v", err)
		}
		names = append(names, hdr.Name)
	}
	if len(names) != 2 || !strings.HasSuffix(names[0], "/PKG-INFO") {
		t.Errorf("archive holds %v", names)
	}
}

func TestFilesAreTheSameInEveryIndex(t *testing.T) {
	a, b := New(), New()
	for path, f := range a.files {
		da, _ := f.content()
		db, _ := b.files[path].content()
		if string(da) != string(db) {
			t.Fatalf("%s differs between two indexes", path)
		}
	}
}

func TestUploadAddsAReleaseAndChangesThePages(t *testing.T) {
	h := New()
	before := do(t, h, "GET", "/simple/flask/", nil, "").Header.Get("ETag")

	resp := do(t, h, "POST", "/_upload/Flask/3.1.0", nil, "")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("upload status %d: %s", resp.StatusCode, readBody(t, resp))
	}
	var res uploadResult
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	if res.Project != "flask" || res.SurrogateKeys[0] != "project/flask" {
		t.Errorf("upload result %+v", res)
	}

	page := do(t, h, "GET", "/simple/flask/", nil, "")
	if page.Header.Get("ETag") == before || !strings.Contains(readBody(t, page), "flask-3.1.0.tar.gz") {
		t.Error("project page did not change after upload")
	}
	if r := do(t, h, "GET", res.URL, nil, ""); r.StatusCode != 200 {
		t.Errorf("uploaded file: status %d", r.StatusCode)
	}
	var doc jsonProject
	json.NewDecoder(do(t, h, "GET", "/pypi/flask/json", nil, "").Body).Decode(&doc)
	if doc.Info.Version != "3.1.0" || len(doc.Releases) != 2 {
		t.Errorf("JSON after upload: version %q, %d releases", doc.Info.Version, len(doc.Releases))
	}
}

func TestUploadWithBodyServesThatBody(t *testing.T) {
	h := New()
	resp := do(t, h, "POST", "/_upload/brand-new/0.0.1", nil, "my bytes")
	var res uploadResult
	json.NewDecoder(resp.Body).Decode(&res)
	if got := readBody(t, do(t, h, "GET", res.URL, nil, "")); got != "my bytes" {
		t.Errorf("file = %q", got)
	}
	if !strings.Contains(readBody(t, do(t, h, "GET", "/simple/", nil, "")), "/simple/brand-new/") {
		t.Error("new project missing from the index")
	}
}

var uploadErrorTests = []struct {
	name   string
	method string
	path   string
	status int
}{
	{"existing release is a conflict", "POST", "/_upload/requests/2.31.0", http.StatusConflict},
	{"invalid project name", "POST", "/_upload/bad%20name/1.0", http.StatusBadRequest},
	{"invalid version", "POST", "/_upload/ok/1.0%3Cscript%3E", http.StatusBadRequest},
	{"missing version", "POST", "/_upload/ok", http.StatusNotFound},
	{"GET on upload", "GET", "/_upload/ok/1.0", http.StatusMethodNotAllowed},
	{"POST on a page", "POST", "/simple/", http.StatusMethodNotAllowed},
}

func TestUploadRejectsBadRequests(t *testing.T) {
	h := New()
	for _, tt := range uploadErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			if resp := do(t, h, tt.method, tt.path, nil, ""); resp.StatusCode != tt.status {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.status)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	for in, want := range map[string]string{
		"Flask": "flask", "left_pad": "left-pad", "a.-_b": "a-b", "Outpost-Demo": "outpost-demo",
	} {
		if got := Normalize(in); got != want {
			t.Errorf("Normalize(%q) = %q, want %q", in, got, want)
		}
	}
}

var negotiationTests = []struct {
	name   string
	accept string
	json   bool
}{
	{"no Accept gets HTML", "", false},
	{"browser gets HTML", "text/html,application/xhtml+xml,*/*;q=0.8", false},
	{"pip gets JSON", "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01", true},
	{"JSON alone gets JSON", "application/vnd.pypi.simple.v1+json", true},
	{"latest JSON gets JSON", "application/vnd.pypi.simple.latest+json", true},
	{"JSON refused with q=0 gets HTML", "application/vnd.pypi.simple.v1+json;q=0", false},
	{"HTML preferred over JSON gets HTML", "application/vnd.pypi.simple.v1+json;q=0.5, text/html", false},
	{"malformed q counts as 1", "application/vnd.pypi.simple.v1+json;q=abc, text/html;q=0.9", true},
}

func TestSimpleAPIServesJSONOrHTMLByAccept(t *testing.T) {
	h := Handler()
	for _, tt := range negotiationTests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/simple/", "/simple/flask/"} {
				resp := do(t, h, "GET", path, http.Header{"Accept": {tt.accept}}, "")
				body := readBody(t, resp)
				if resp.Header.Get("Vary") != "Accept" {
					t.Errorf("%s: Vary %q", path, resp.Header.Get("Vary"))
				}
				isJSON := resp.Header.Get("Content-Type") == "application/vnd.pypi.simple.v1+json"
				if isJSON != tt.json {
					t.Fatalf("%s: Content-Type %q", path, resp.Header.Get("Content-Type"))
				}
				if isJSON && !json.Valid([]byte(body)) {
					t.Errorf("%s: invalid JSON %s", path, body)
				}
			}
		})
	}
}

func TestSimpleJSONListsFilesWithDigests(t *testing.T) {
	h := Handler()
	resp := do(t, h, "GET", "/simple/left-pad/", http.Header{"Accept": {"application/vnd.pypi.simple.v1+json"}}, "")
	var doc simpleProjectDoc
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.Meta.APIVersion != "1.1" || doc.Name != "left-pad" || len(doc.Files) != 3 || len(doc.Versions) != 3 {
		t.Fatalf("doc = %+v", doc)
	}
	f := do(t, h, "GET", doc.Files[0].URL, nil, "")
	sum := sha256.Sum256([]byte(readBody(t, f)))
	if hex.EncodeToString(sum[:]) != doc.Files[0].Hashes["sha256"] {
		t.Error("file does not match its digest")
	}
}

func TestUploadsAreBounded(t *testing.T) {
	h := New()
	big := strings.Repeat("x", MaxUploadSize+1)
	if resp := do(t, h, "POST", "/_upload/big/1.0", nil, big); resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized upload: status %d", resp.StatusCode)
	}
	status := 0
	for i := 0; i < MaxFiles+1 && status != http.StatusInsufficientStorage; i++ {
		status = do(t, h, "POST", "/_upload/many/1."+strconv.Itoa(i), nil, "x").StatusCode
	}
	if status != http.StatusInsufficientStorage {
		t.Fatalf("last status %d, want 507 once full", status)
	}
	if _, err := h.Upload("another", "1.0", nil); !errors.Is(err, ErrFull) {
		t.Errorf("Upload when full: %v", err)
	}
	if p, _ := h.project("another"); p != nil {
		t.Error("a refused upload left a project behind")
	}
}
