package fiddle

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config"
	"go.yaml.in/yaml/v3"
)

//go:embed ui/index.html
var page []byte

//go:embed example.yaml
var exampleYAML []byte

// Example returns the package-index example fiddle.
func Example() (*Request, error) {
	var f Request
	if err := yaml.Unmarshal(exampleYAML, &f); err != nil {
		return nil, fmt.Errorf("fiddle: the built-in example: %w", err)
	}
	return &f, nil
}

// Handler serves the Fiddle under /fiddle/: the page and its JSON API.
//
//	GET  /fiddle/                      the page (also /fiddle/f/{id})
//	POST /fiddle/api/run               run a fiddle (see Request, Response)
//	POST /fiddle/api/validate          {"config": "..."}: {"errors": [...], "upstreams": [...]}
//	POST /fiddle/api/fiddles           save a fiddle: {"id", "url"}
//	GET  /fiddle/api/fiddles/{id}      a saved fiddle
//	GET  /fiddle/api/fiddles/{id}/test the saved fiddle as a YAML test file
//	GET  /fiddle/api/example           the package-index example
//
// Whoever can reach it can make the node open loopback listeners and run
// requests (real upstreams only when a fiddle names them): the admin
// listener serves it behind its token, "outpost fiddle" on loopback.
type Handler struct {
	store *Store
	runs  chan struct{} // runs at once
	mux   *http.ServeMux
}

// Limits of the API.
const (
	maxBody    = 1 << 20
	concurrent = 2
	runTimeout = 5 * time.Minute // steps not started by then are not run
)

// NewHandler returns the Fiddle's handler over a store.
func NewHandler(store *Store) *Handler {
	h := &Handler{store: store, runs: make(chan struct{}, concurrent), mux: http.NewServeMux()}
	h.mux.HandleFunc("GET /fiddle/{$}", h.page)
	h.mux.HandleFunc("GET /fiddle/f/{id}", h.page)
	h.mux.HandleFunc("POST /fiddle/api/run", h.run)
	h.mux.HandleFunc("POST /fiddle/api/validate", h.validate)
	h.mux.HandleFunc("POST /fiddle/api/fiddles", h.save)
	h.mux.HandleFunc("GET /fiddle/api/fiddles/{id}", h.load)
	h.mux.HandleFunc("GET /fiddle/api/fiddles/{id}/test", h.export)
	h.mux.HandleFunc("GET /fiddle/api/example", h.example)
	return h
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) { h.mux.ServeHTTP(w, r) }

func (h *Handler) page(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// The page loads nothing from elsewhere, and nothing may frame it.
	w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Write(page)
}

func (h *Handler) run(w http.ResponseWriter, r *http.Request) {
	var f Request
	if !decode(w, r, &f) {
		return
	}
	select {
	case h.runs <- struct{}{}:
		defer func() { <-h.runs }()
	case <-r.Context().Done():
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), runTimeout)
	defer cancel()
	writeJSON(w, http.StatusOK, Run(ctx, &f))
}

// validate checks a config as the page's editor changes.
func (h *Handler) validate(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Config string `json:"config"`
	}
	if !decode(w, r, &in) {
		return
	}
	errs, upstreams := []ConfigError{}, []string{}
	cfg, err := config.Parse(ConfigFile, []byte(in.Config))
	if err != nil {
		errs = configErrors(err)
	} else {
		for name := range cfg.Upstreams {
			upstreams = append(upstreams, name)
		}
		sort.Strings(upstreams)
	}
	writeJSON(w, http.StatusOK, map[string]any{"errors": errs, "upstreams": upstreams})
}

func (h *Handler) save(w http.ResponseWriter, r *http.Request) {
	var f Request
	if !decode(w, r, &f) {
		return
	}
	id, err := h.store.Save(&f)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": id, "url": "/fiddle/f/" + id})
}

func (h *Handler) load(w http.ResponseWriter, r *http.Request) {
	if f := h.saved(w, r); f != nil {
		writeJSON(w, http.StatusOK, f)
	}
}

func (h *Handler) export(w http.ResponseWriter, r *http.Request) {
	f := h.saved(w, r)
	if f == nil {
		return
	}
	b, err := Export(f)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Content-Disposition", `attachment; filename="fiddle-`+r.PathValue("id")+`.yaml"`)
	w.Write(b)
}

func (h *Handler) saved(w http.ResponseWriter, r *http.Request) *Request {
	f, err := h.store.Load(r.PathValue("id"))
	switch {
	case errors.Is(err, ErrNotFound):
		writeJSON(w, http.StatusNotFound, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
	}
	return f
}

func (h *Handler) example(w http.ResponseWriter, _ *http.Request) {
	f, err := Example()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, f)
}

// decode reads a JSON body of at most maxBody bytes, refusing unknown
// fields (a misspelt field would otherwise be ignored without a word).
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "the body must be application/json"})
		return false
	}
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("body larger than %d bytes", maxBody)})
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad request: " + err.Error()})
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
