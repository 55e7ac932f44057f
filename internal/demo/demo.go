// Package demo is the origin that outpost serves when started without a
// config: a small package index shaped like the Python Package Index, so that
// the caching behaviour of the edge can be seen on realistic traffic with
// nothing else installed. It serves, with the cache headers a real index
// sends:
//
//	path                                   what                     caching
//	/simple/                               list of projects         page
//	/simple/<project>/                     links to files           page, key project/<name>
//	/pypi/<project>/json                   JSON API                 page, key project/<name>
//	/packages/<aa>/<bb>/<file>.tar.gz      release files            immutable for a year
//	POST /_upload/<project>/<version>      adds a release           not cached
//
// The simple API pages are HTML (PEP 503) or JSON (PEP 691) by the Accept
// header, and say so with Vary: Accept.
//
// Pages carry Cache-Control max-age=60 for browsers, a day of Surrogate-Control
// for the edge with stale-while-revalidate and stale-if-error, and Surrogate-Key
// so an upload can purge exactly the pages it changes. Files are real,
// deterministic .tar.gz archives (a few KiB to 1 MiB), generated on first use.
// Conditional and range requests are handled by http.ServeContent.
//
// It is a demo: everything lives in memory and is lost on exit.
package demo

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Cache headers, as a package index behind a CDN sends them.
const (
	PageCacheControl     = "max-age=60, public"
	PageSurrogateControl = "max-age=86400, stale-while-revalidate=300, stale-if-error=86400"
	FileCacheControl     = "max-age=31536000, immutable, public"
)

// Errors from Upload.
var (
	// ErrInvalidName means a project name or version is not allowed.
	ErrInvalidName = errors.New("demo: invalid project name or version")
	// ErrExists means the release is already there; files are immutable.
	ErrExists = errors.New("demo: release already exists")
	// ErrFull means the index holds MaxFiles files and takes no more.
	ErrFull = errors.New("demo: index is full")
)

// Bounds on what uploads may add, since the upload endpoint has no
// authentication and everything is kept in memory (at most about 256 MiB).
const (
	MaxUploadSize = 1 << 20
	MaxFiles      = 256
)

// Index is an in-memory package index. It is safe for concurrent use.
type Index struct {
	now func() time.Time

	// mu guards projects, files and the release lists inside projects.
	mu       sync.RWMutex
	projects map[string]*project // by normalized name
	files    map[string]*file    // by URL path
}

type project struct {
	name     string // normalized
	summary  string
	releases []*file // in upload order; one sdist per release
}

// seed is the content every Index starts with.
var seed = []struct {
	name, summary string
	versions      []string
}{
	{"requests", "Python HTTP for Humans.", []string{"2.31.0", "2.32.3"}},
	{"numpy", "Fundamental package for array computing in Python", []string{"1.26.4", "2.1.0"}},
	{"flask", "A simple framework for building complex web applications.", []string{"3.0.3"}},
	{"outpost-demo", "The package the outpost demo index was built for.", []string{"0.1.0"}},
	{"left-pad", "String left pad", []string{"1.0.0", "1.1.0", "1.3.0"}},
}

// seedEpoch is the upload time of the first seeded release; each further one
// is a day later, so Last-Modified is stable across runs.
var seedEpoch = time.Date(2024, 1, 15, 9, 30, 0, 0, time.UTC)

// New returns an index holding the seeded projects.
func New() *Index {
	ix := &Index{
		now:      time.Now,
		projects: make(map[string]*project),
		files:    make(map[string]*file),
	}
	uploaded := seedEpoch
	for _, s := range seed {
		for _, v := range s.versions {
			ix.add(s.name, s.summary, v, nil, uploaded)
			uploaded = uploaded.Add(24 * time.Hour)
		}
	}
	return ix
}

// Handler returns a new seeded index as an http.Handler.
func Handler() http.Handler { return New() }

// Upload adds a release of project (created if new). data is the file; nil
// means generate one. It returns the URL path of the new file.
func (ix *Index) Upload(projectName, version string, data []byte) (string, error) {
	if !validName.MatchString(projectName) || !validVersion.MatchString(version) {
		return "", fmt.Errorf("%w: %q %q", ErrInvalidName, projectName, version)
	}
	f, err := ix.add(projectName, "", version, data, ix.now().UTC().Truncate(time.Second))
	if err != nil {
		return "", err
	}
	return f.path, nil
}

func (ix *Index) add(name, summary, version string, data []byte, uploaded time.Time) (*file, error) {
	norm := Normalize(name)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	p := ix.projects[norm]
	if p != nil && slices.ContainsFunc(p.releases, func(f *file) bool { return f.version == version }) {
		return nil, fmt.Errorf("%w: %s %s", ErrExists, norm, version)
	}
	if len(ix.files) >= MaxFiles {
		return nil, fmt.Errorf("%w: %d files", ErrFull, len(ix.files))
	}
	if p == nil {
		p = &project{name: norm, summary: summary}
		ix.projects[norm] = p
	}
	f := newFile(norm, version, uploaded, data)
	p.releases = append(p.releases, f)
	ix.files[f.path] = f
	return f, nil
}

// PEP 508 project names and a conservative version syntax (PEP 440 allows
// less, but this keeps paths and HTML free of anything needing escapes).
var (
	validName    = regexp.MustCompile(`^(?i)[a-z0-9]([a-z0-9._-]{0,98}[a-z0-9])?$`)
	validVersion = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.+!_-]{0,63}$`)
	separators   = regexp.MustCompile(`[-_.]+`)
)

// Normalize returns the PEP 503 normalized form of a project name.
func Normalize(name string) string {
	return separators.ReplaceAllString(strings.ToLower(name), "-")
}

// project returns the project and a snapshot of its releases.
func (ix *Index) project(norm string) (*project, []*file) {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	p := ix.projects[norm]
	if p == nil {
		return nil, nil
	}
	return p, slices.Clone(p.releases)
}

func (ix *Index) projectNames() []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	names := make([]string, 0, len(ix.projects))
	for name := range ix.projects {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (ix *Index) file(path string) *file {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return ix.files[path]
}
