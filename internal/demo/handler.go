package demo

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"strings"
	"time"
)

// ServeHTTP routes a request to the index pages, the JSON API, the files or
// the upload endpoint.
func (ix *Index) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	if rest, ok := strings.CutPrefix(path, "/_upload/"); ok {
		ix.serveUpload(w, r, rest)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case path == "/":
		servePage(w, r, "text/html; charset=utf-8", "all-html", []byte(homePage))
	case path == "/simple/":
		serveSimple(w, r, "simple-index", ix.renderIndex, func() any { return ix.simpleIndexDoc() })
	case strings.HasPrefix(path, "/simple/"):
		ix.serveProject(w, r, strings.TrimPrefix(path, "/simple/"))
	case strings.HasPrefix(path, "/pypi/") && strings.HasSuffix(path, "/json"):
		ix.serveJSON(w, r, strings.TrimSuffix(strings.TrimPrefix(path, "/pypi/"), "/json"))
	case strings.HasPrefix(path, "/packages/"):
		ix.serveFile(w, r)
	default:
		http.NotFound(w, r)
	}
}

const homePage = `<!DOCTYPE html>
<html><head><title>outpost demo index</title></head>
<body><h1>outpost demo index</h1>
<p>A small package index served through outpost. Start at <a href="/simple/">/simple/</a>.</p>
</body></html>
`

// servePage sends a page with the cache headers of the index and an ETag from
// its content; http.ServeContent answers conditional requests.
func servePage(w http.ResponseWriter, r *http.Request, contentType, keys string, body []byte) {
	h := w.Header()
	sum := sha256.Sum256(body)
	h.Set("Content-Type", contentType)
	h.Set("Cache-Control", PageCacheControl)
	h.Set("Surrogate-Control", PageSurrogateControl)
	h.Set("Surrogate-Key", keys)
	h.Set("ETag", `"`+hex.EncodeToString(sum[:16])+`"`)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(body))
}

// serveMissingProject answers 404 for an unknown project, cacheable like a
// page and tagged with the project's key, so the upload that creates the
// project purges the 404 too.
func serveMissingProject(w http.ResponseWriter, norm string) {
	h := w.Header()
	h.Set("Cache-Control", PageCacheControl)
	h.Set("Surrogate-Control", PageSurrogateControl)
	h.Set("Surrogate-Key", "project/"+norm)
	http.Error(w, "no such project", http.StatusNotFound)
}

func (ix *Index) serveProject(w http.ResponseWriter, r *http.Request, rest string) {
	name, slash := strings.CutSuffix(rest, "/")
	if !validName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	norm := Normalize(name)
	if name != norm || !slash {
		http.Redirect(w, r, "/simple/"+norm+"/", http.StatusMovedPermanently)
		return
	}
	p, files := ix.project(norm)
	if p == nil {
		serveMissingProject(w, norm)
		return
	}
	html := func() []byte { return renderProject(norm, files) }
	serveSimple(w, r, "project/"+norm, html, func() any { return simpleProject(norm, files) })
}

func (ix *Index) renderIndex() []byte {
	var b bytes.Buffer
	b.WriteString("<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n    <title>Simple index</title>\n  </head>\n  <body>\n")
	for _, name := range ix.projectNames() {
		n := html.EscapeString(name)
		fmt.Fprintf(&b, "    <a href=\"/simple/%s/\">%s</a>\n", n, n)
	}
	b.WriteString("  </body>\n</html>\n")
	return b.Bytes()
}

// renderProject writes a PEP 503 project page with digests in the links.
func renderProject(norm string, files []*file) []byte {
	var b bytes.Buffer
	n := html.EscapeString(norm)
	fmt.Fprintf(&b, "<!DOCTYPE html>\n<html>\n  <head>\n    <meta name=\"pypi:repository-version\" content=\"1.1\">\n    <title>Links for %s</title>\n  </head>\n  <body>\n    <h1>Links for %s</h1>\n", n, n)
	for _, f := range files {
		_, sum := f.content()
		fmt.Fprintf(&b, "    <a href=\"%s#sha256=%s\">%s</a><br />\n", html.EscapeString(f.path), sum, html.EscapeString(f.name))
	}
	b.WriteString("  </body>\n</html>\n")
	return b.Bytes()
}

// jsonFile is one file in the JSON API, with the fields clients rely on.
type jsonFile struct {
	Filename    string            `json:"filename"`
	URL         string            `json:"url"`
	Digests     map[string]string `json:"digests"`
	Size        int               `json:"size"`
	PackageType string            `json:"packagetype"`
	UploadTime  string            `json:"upload_time_iso_8601"`
}

type jsonProject struct {
	Info struct {
		Name    string `json:"name"`
		Version string `json:"version"`
		Summary string `json:"summary"`
	} `json:"info"`
	Releases map[string][]jsonFile `json:"releases"`
	URLs     []jsonFile            `json:"urls"`
}

func (ix *Index) serveJSON(w http.ResponseWriter, r *http.Request, name string) {
	if !validName.MatchString(name) {
		http.NotFound(w, r)
		return
	}
	norm := Normalize(name)
	p, files := ix.project(norm)
	if p == nil {
		serveMissingProject(w, norm)
		return
	}
	var doc jsonProject
	doc.Info.Name, doc.Info.Summary = p.name, p.summary
	doc.Releases = make(map[string][]jsonFile, len(files))
	for _, f := range files {
		data, sum := f.content()
		jf := jsonFile{
			Filename: f.name, URL: f.path, Digests: map[string]string{"sha256": sum},
			Size: len(data), PackageType: "sdist", UploadTime: f.uploaded.Format(time.RFC3339),
		}
		doc.Releases[f.version] = []jsonFile{jf}
		doc.Info.Version, doc.URLs = f.version, []jsonFile{jf} // the latest upload wins
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	servePage(w, r, "application/json", "project/"+norm+" all-json", body)
}

func (ix *Index) serveFile(w http.ResponseWriter, r *http.Request) {
	f := ix.file(r.URL.Path)
	if f == nil {
		http.NotFound(w, r)
		return
	}
	data, _ := f.content()
	h := w.Header()
	h.Set("Content-Type", "application/gzip")
	h.Set("Cache-Control", FileCacheControl)
	h.Set("ETag", f.etag())
	http.ServeContent(w, r, "", f.uploaded, bytes.NewReader(data))
}

// uploadResult tells the uploader what changed, including the surrogate keys
// to purge at the edge.
type uploadResult struct {
	Project       string   `json:"project"`
	Version       string   `json:"version"`
	URL           string   `json:"url"`
	SurrogateKeys []string `json:"surrogate_keys"`
}

func (ix *Index) serveUpload(w http.ResponseWriter, r *http.Request, rest string) {
	w.Header().Set("Cache-Control", "no-store")
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	name, version, ok := strings.Cut(rest, "/")
	if !ok {
		http.Error(w, "want /_upload/<project>/<version>", http.StatusNotFound)
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxUploadSize))
	if err != nil {
		http.Error(w, "upload too large or cut short", http.StatusRequestEntityTooLarge)
		return
	}
	if len(data) == 0 {
		data = nil // generate one
	}
	path, err := ix.Upload(name, version, data)
	switch {
	case errors.Is(err, ErrInvalidName):
		http.Error(w, "invalid project name or version", http.StatusBadRequest)
		return
	case errors.Is(err, ErrExists):
		http.Error(w, "release already exists; files are immutable", http.StatusConflict)
		return
	case errors.Is(err, ErrFull):
		http.Error(w, "the demo index is full", http.StatusInsufficientStorage)
		return
	case err != nil:
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	norm := Normalize(name)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(uploadResult{
		Project: norm, Version: version, URL: path,
		SurrogateKeys: []string{"project/" + norm, "simple-index"},
	})
}
