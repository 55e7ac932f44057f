package demo

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The simple API comes as HTML (PEP 503) or JSON (PEP 691), chosen by the
// Accept header, so its pages carry Vary: Accept like the real index's.
const (
	simpleJSON = "application/vnd.pypi.simple.v1+json"
	simpleHTML = "text/html; charset=utf-8"
)

// wantsJSON reports whether the client prefers the PEP 691 JSON form: its
// quality in Accept is above that of every HTML form. No Accept means HTML.
func wantsJSON(accept string) bool {
	var qJSON, qHTML float64
	for part := range strings.SplitSeq(accept, ",") {
		media, params, _ := strings.Cut(part, ";")
		q := quality(params)
		switch strings.ToLower(strings.TrimSpace(media)) {
		case simpleJSON, "application/vnd.pypi.simple.latest+json":
			qJSON = max(qJSON, q)
		case "text/html", "application/vnd.pypi.simple.v1+html", "application/vnd.pypi.simple.latest+html", "*/*":
			qHTML = max(qHTML, q)
		}
	}
	return qJSON > qHTML
}

// quality returns the q parameter among params, 1 if absent or malformed.
func quality(params string) float64 {
	for p := range strings.SplitSeq(params, ";") {
		name, value, _ := strings.Cut(strings.TrimSpace(p), "=")
		if strings.EqualFold(name, "q") {
			if q, err := strconv.ParseFloat(value, 64); err == nil && q >= 0 && q <= 1 {
				return q
			}
		}
	}
	return 1
}

// serveSimple sends one simple API page in the form the client asked for.
func serveSimple(w http.ResponseWriter, r *http.Request, keys string, html func() []byte, doc func() any) {
	w.Header().Set("Vary", "Accept")
	if !wantsJSON(r.Header.Get("Accept")) {
		servePage(w, r, simpleHTML, keys+" all-html", html())
		return
	}
	body, err := json.Marshal(doc())
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	servePage(w, r, simpleJSON, keys+" all-html", body)
}

type simpleMeta struct {
	APIVersion string `json:"api-version"`
}

var meta = simpleMeta{APIVersion: "1.1"}

type simpleIndexDoc struct {
	Meta     simpleMeta          `json:"meta"`
	Projects []map[string]string `json:"projects"`
}

func (ix *Index) simpleIndexDoc() simpleIndexDoc {
	doc := simpleIndexDoc{Meta: meta}
	for _, name := range ix.projectNames() {
		doc.Projects = append(doc.Projects, map[string]string{"name": name})
	}
	return doc
}

type simpleFile struct {
	Filename   string            `json:"filename"`
	URL        string            `json:"url"`
	Hashes     map[string]string `json:"hashes"`
	Size       int               `json:"size"`
	UploadTime string            `json:"upload-time"`
}

type simpleProjectDoc struct {
	Meta     simpleMeta   `json:"meta"`
	Name     string       `json:"name"`
	Versions []string     `json:"versions"`
	Files    []simpleFile `json:"files"`
}

func simpleProject(norm string, files []*file) simpleProjectDoc {
	doc := simpleProjectDoc{Meta: meta, Name: norm}
	for _, f := range files {
		data, sum := f.content()
		doc.Versions = append(doc.Versions, f.version)
		doc.Files = append(doc.Files, simpleFile{
			Filename: f.name, URL: f.path, Hashes: map[string]string{"sha256": sum},
			Size: len(data), UploadTime: f.uploaded.Format(time.RFC3339),
		})
	}
	return doc
}
