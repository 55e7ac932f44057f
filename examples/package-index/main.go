// Command package-index is the origin of the package-index example: a small
// package index (internal/demo) that, when a release is uploaded, soft-purges
// the pages the upload changed from the Outpost edge in front of it, through
// the edge's admin API.
//
// Pages (/simple/<project>/, /pypi/<project>/json) carry
// Surrogate-Control "max-age=86400, stale-while-revalidate=300,
// stale-if-error=86400", a one-minute browser Cache-Control and the
// surrogate keys project/<name>; files under /packages/ are immutable for a
// year. POST /_upload/<project>/<version> adds a release, then purges the
// keys project/<name> and simple-index softly: the edge keeps serving the
// old pages while one request per page fetches the new ones, and the
// cached files are untouched. The upload answers once the purge is done.
//
//	go run ./examples/package-index -listen 127.0.0.1:8081 -edge-admin http://127.0.0.1:9090
//
// The admin token is read from $OUTPOST_ADMIN_TOKEN.
// See README.md for the walk-through.
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/internal/demo"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8081", "address the origin listens on")
	admin := flag.String("edge-admin", "http://127.0.0.1:9090", "the edge's admin API")
	flag.Parse()
	o := newOrigin(&edgeAdmin{url: *admin, token: os.Getenv("OUTPOST_ADMIN_TOKEN")})
	log.Printf("package index on http://%s, purging through %s", *listen, *admin)
	s := &http.Server{Addr: *listen, Handler: o, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(s.ListenAndServe())
}

// origin is the demo index with purge-on-upload.
type origin struct {
	index *demo.Index
	edge  *edgeAdmin
}

func newOrigin(edge *edgeAdmin) *origin { return &origin{index: demo.New(), edge: edge} }

func (o *origin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasPrefix(r.URL.Path, "/_upload/") {
		o.index.ServeHTTP(w, r)
		return
	}
	rec := &recorder{header: http.Header{}}
	o.index.ServeHTTP(rec, r)
	if rec.status == http.StatusCreated {
		o.purgeAfterUpload(rec)
	}
	for k, v := range rec.header {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.status)
	w.Write(rec.body.Bytes())
}

// purgeAfterUpload soft-purges the surrogate keys the upload names and
// notes the outcome in the answer's Purge header.
func (o *origin) purgeAfterUpload(rec *recorder) {
	var up struct {
		Project       string   `json:"project"`
		Version       string   `json:"version"`
		SurrogateKeys []string `json:"surrogate_keys"`
	}
	if err := json.Unmarshal(rec.body.Bytes(), &up); err != nil || len(up.SurrogateKeys) == 0 {
		rec.header.Set("Purge", "failed: no surrogate keys in the upload")
		return
	}
	start := time.Now()
	n, err := o.edge.softPurge(up.SurrogateKeys)
	if err != nil {
		log.Printf("upload %s %s: purge failed: %v", up.Project, up.Version, err)
		rec.header.Set("Purge", "failed: "+err.Error())
		return
	}
	log.Printf("upload %s %s: soft-purged %v, %d objects in %v", up.Project, up.Version, up.SurrogateKeys, n, time.Since(start))
	rec.header.Set("Purge", fmt.Sprintf("soft; keys=%s; objects=%d", strings.Join(up.SurrogateKeys, ","), n))
}

// edgeAdmin is the client of an edge's admin API.
type edgeAdmin struct {
	url   string // http://host:port
	token string
}

var adminClient = &http.Client{Timeout: 10 * time.Second}

// softPurge marks every object tagged with keys stale and returns how many.
func (e *edgeAdmin) softPurge(keys []string) (int, error) {
	body, err := json.Marshal(map[string]any{"keys": keys, "soft": true})
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequest(http.MethodPost, e.url+"/purge", bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := adminClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("edge admin: %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	var res struct{ Objects *int }
	if err := json.Unmarshal(b, &res); err != nil || res.Objects == nil {
		return 0, errors.New("edge admin: answer without an object count")
	}
	return *res.Objects, nil
}

// recorder keeps the index's answer to an upload until the purge is done.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }

func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}

func (r *recorder) Write(p []byte) (int, error) {
	r.WriteHeader(http.StatusOK)
	return r.body.Write(p)
}
