package node

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/metrics"
)

// adminServer is the admin API: JSON over HTTP on its own listener.
//
//	GET  /healthz   the process is up
//	GET  /readyz    the node serves traffic (503 while draining)
//	GET  /metrics   Prometheus metrics
//	GET  /stats     JSON: connections, cache, upstreams, purges
//	GET  /version   the build version
//	POST /reload    re-read the config file (or the config in the body)
//	POST /purge     {"urls": [...], "keys": [...], "all": false, "soft": false}
//	GET  /debug/pprof/...  Go profiles
//
// Everything but /healthz, /readyz and /version needs the bearer token when
// one is configured.
type adminServer struct {
	n     *Node
	ln    net.Listener
	hs    *http.Server
	token string
}

func (n *Node) startAdmin(cfg *config.Config, ln net.Listener) error {
	if cfg.Admin.Addr == "" && ln == nil {
		return nil
	}
	token, err := adminToken(cfg.Admin)
	if err != nil {
		return err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Admin.Addr); err != nil {
			return fmt.Errorf("admin listen %s: %w", cfg.Admin.Addr, err)
		}
	}
	a := &adminServer{n: n, ln: ln, token: token}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /readyz", a.ready)
	mux.HandleFunc("GET /version", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, Version+"\n") })
	mux.Handle("GET /metrics", a.auth(metrics.Handler(n.metricsSnapshot)))
	mux.Handle("GET /stats", a.auth(http.HandlerFunc(a.stats)))
	mux.Handle("POST /reload", a.auth(http.HandlerFunc(a.reload)))
	mux.Handle("POST /purge", a.auth(http.HandlerFunc(a.purge)))
	mux.Handle("GET /debug/pprof/", a.auth(http.HandlerFunc(pprof.Index)))
	mux.Handle("GET /debug/pprof/profile", a.auth(http.HandlerFunc(pprof.Profile)))
	a.hs = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	n.admin = a
	go func() {
		if err := a.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- err
		}
	}()
	return nil
}

func adminToken(c config.Admin) (string, error) {
	switch {
	case c.TokenFile != "":
		b, err := os.ReadFile(c.TokenFile)
		if err != nil {
			return "", fmt.Errorf("admin token: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	case c.TokenEnv != "":
		t := os.Getenv(c.TokenEnv)
		if t == "" {
			return "", fmt.Errorf("admin token: environment variable %s is empty", c.TokenEnv)
		}
		return t, nil
	}
	return "", nil
}

func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.hs.Shutdown(ctx)
}

// auth requires the bearer token when one is configured.
func (a *adminServer) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(a.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="outpost"`)
				writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
				return
			}
		}
		h.ServeHTTP(w, r)
	})
}

func (a *adminServer) ready(w http.ResponseWriter, _ *http.Request) {
	if a.n.srv.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
}

func (a *adminServer) stats(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.n.Stats())
}

// reload re-reads the config file, or takes a config from the body.
func (a *adminServer) reload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	if len(strings.TrimSpace(string(body))) > 0 {
		var cfg *config.Config
		if cfg, err = config.Parse(a.n.Config().File, body); err == nil {
			err = a.n.Reload(cfg)
		}
	} else if file := a.n.Config().File; file != "" {
		err = a.n.ReloadFile(file)
	} else {
		err = errors.New("no config file to reload: send the config in the body")
	}
	if err != nil {
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "reloaded"})
}

// purgeRequest is the body of POST /purge.
type purgeRequest struct {
	URLs []string `json:"urls"`
	Keys []string `json:"keys"`
	All  bool     `json:"all"`
	Soft bool     `json:"soft"`
}

// maxPurgeItems bounds one call; more is a client bug or an attack.
const maxPurgeItems = 10000

func (a *adminServer) purge(w http.ResponseWriter, r *http.Request) {
	var req purgeRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 4<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad purge request: " + err.Error()})
		return
	}
	switch n := len(req.URLs) + len(req.Keys); {
	case n == 0 && !req.All:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "nothing to purge: give urls, keys or all"})
		return
	case n > maxPurgeItems:
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("too many urls and keys: %d, at most %d per call", n, maxPurgeItems)})
		return
	}
	start := time.Now()
	a.n.mu.Lock()
	app := a.n.app
	a.n.mu.Unlock()
	res, err := app.Purge(edge.PurgeRequest{URLs: req.URLs, Keys: req.Keys, All: req.All, Soft: req.Soft})
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	a.n.Log.Info("purge", "who", a.who(r), "urls", len(req.URLs), "keys", req.Keys, "all", req.All, "soft", req.Soft,
		"objects", res.Objects, "took_ms", time.Since(start).Milliseconds())
	writeJSON(w, http.StatusOK, res)
}

// who names the caller in the purge log by the start of its token (never
// the whole token) and its address.
func (a *adminServer) who(r *http.Request) string {
	if a.token == "" {
		return "loopback:" + r.RemoteAddr
	}
	return "token:" + a.token[:min(4, len(a.token))] + "…@" + r.RemoteAddr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
