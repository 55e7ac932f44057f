package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/fiddle"
	"github.com/outpost-edge/outpost/metrics"
)

// adminServer is the admin API: JSON over HTTP on its own listener.
//
//	GET  /healthz   the process is up
//	GET  /readyz    the node serves traffic (503 while draining)
//	GET  /metrics   Prometheus metrics
//	GET  /stats     JSON: connections, cache, upstreams, purges (snake_case keys, units in the names)
//	GET  /version   the build version
//	POST /reload    re-read the config file (or the config in the body)
//	POST /purge     {"urls": [...], "keys": [...], "all": false, "soft": false}
//	                (in a cluster: on every node; see clusterPurge)
//	GET  /cluster   the cluster's members (see clusterAPI)
//	GET  /debug/pprof/...  Go profiles
//	GET  /status.json  the status page's live figures (see pages.go)
//	     /fiddle/api/...  the Fiddle's API
//
// Everything but /healthz, /readyz and /version needs a bearer token: the
// configured ones, or the one the node generates (see DefaultTokenFile).
// Every request is refused unless its Host names the node (see
// admin.hosts), it carries no Origin but the API's own and, with a body,
// a JSON or YAML content type: a web page cannot make a browser send it.
type adminServer struct {
	n       *Node
	ln      net.Listener
	hs      *http.Server
	tokens  []adminCred // never empty
	hosts   []string    // admin.hosts
	fiddles *fiddle.Store
}

// The admin API's own limits: slow or large requests are cut. The write
// timeout leaves room for a CPU profile (30s by default).
const (
	adminHeaderTimeout = 10 * time.Second
	adminReadTimeout   = time.Minute
	adminWriteTimeout  = 2 * time.Minute
	adminIdleTimeout   = 2 * time.Minute
	adminMaxHeader     = 64 << 10
	maxReloadBody      = 8 << 20
)

func (n *Node) startAdmin(cfg *config.Config, ln net.Listener) error {
	if cfg.Admin.Addr == "" && ln == nil {
		return nil
	}
	tokens, err := n.adminTokens(cfg.Admin)
	if err != nil {
		return err
	}
	if ln == nil {
		if ln, err = net.Listen("tcp", cfg.Admin.Addr); err != nil {
			return fmt.Errorf("admin listen %s: %w", cfg.Admin.Addr, err)
		}
	}
	a := &adminServer{n: n, ln: ln, tokens: tokens, hosts: cfg.Admin.Hosts, fiddles: fiddleStore(cfg.Admin, n.Log)}
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
	a.pages(mux)
	a.clusterAPI(mux)
	a.hs = &http.Server{Handler: a.guard(mux), ReadHeaderTimeout: adminHeaderTimeout, ReadTimeout: adminReadTimeout,
		WriteTimeout: adminWriteTimeout, IdleTimeout: adminIdleTimeout, MaxHeaderBytes: adminMaxHeader}
	n.admin = a
	go func() {
		if err := a.hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- err
		}
	}()
	return nil
}

func (a *adminServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = a.hs.Shutdown(ctx)
}

// auth requires one of the bearer tokens, and records the token's name in
// the request's context for the logs.
func (a *adminServer) auth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		name := tokenOwner(a.tokens, got)
		if !ok || name == "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="outpost"`)
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "missing or invalid bearer token"})
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), tokenNameKey{}, name)))
	})
}

// tokenNameKey keys the name of the caller's token in a request context.
type tokenNameKey struct{}

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

// noFileToReload answers a reload without a body on a node whose config
// came from no file.
const noFileToReload = "no config file to reload: this node did not start from one (the built-in demo, " +
	"or a config built in Go); start outpost with \"outpost run -c FILE\", or send a config in the body"

// reload re-reads the config file, or takes a config from the body. A
// node started without a file (the demo) has nothing to re-read: 409.
func (a *adminServer) reload(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReloadBody))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("config larger than %d bytes", maxReloadBody)})
		return
	case err != nil:
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
		writeJSON(w, http.StatusConflict, map[string]string{"error": noFileToReload})
		return
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
// maxPurgeBody bounds the body: a call at the item bound with long URLs
// fits, more is refused as too large rather than cut.
const (
	maxPurgeItems = 10000
	maxPurgeBody  = 4 << 20
)

// purge answers POST /purge: 200 with the count of objects touched, 400
// for a malformed request, 413 for one too large, 501 on a node without a
// cache. The purge is effective before the answer is sent.
func (a *adminServer) purge(w http.ResponseWriter, r *http.Request) {
	var req purgeRequest
	body := http.MaxBytesReader(w, r.Body, maxPurgeBody)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(&req)
	if err == nil && dec.More() {
		err = errors.New("more than one JSON value in the body")
	}
	var tooLarge *http.MaxBytesError
	switch n := len(req.URLs) + len(req.Keys); {
	case errors.As(err, &tooLarge):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("purge request larger than %d bytes", maxPurgeBody)})
		return
	case err != nil:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad purge request: " + err.Error()})
		return
	case n == 0 && !req.All:
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "nothing to purge: give urls, keys or all"})
		return
	case n > maxPurgeItems:
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": fmt.Sprintf("too many urls and keys: %d, at most %d per call", n, maxPurgeItems)})
		return
	case slices.Contains(req.Keys, ""):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "bad purge request: empty surrogate key"})
		return
	}
	start := time.Now()
	a.n.mu.Lock()
	app := a.n.app
	a.n.mu.Unlock()
	if a.n.cluster != nil {
		a.clusterPurge(w, r, app, edge.PurgeRequest{URLs: req.URLs, Keys: req.Keys, All: req.All, Soft: req.Soft})
		return
	}
	res, err := app.Purge(edge.PurgeRequest{URLs: req.URLs, Keys: req.Keys, All: req.All, Soft: req.Soft})
	if err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, edge.ErrNoCache) {
			status = http.StatusNotImplemented
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	a.n.Log.Info("purge", "who", a.who(r), "kind", purgeKind(&req), "soft", req.Soft,
		"urls", logList(req.URLs), "keys", logList(req.Keys), "objects", res.Objects,
		"took", time.Since(start).String())
	writeJSON(w, http.StatusOK, res)
}

// purgeKind names what a purge call asked, as the purge metrics do.
func purgeKind(req *purgeRequest) string {
	var kinds []string
	if len(req.URLs) > 0 {
		kinds = append(kinds, "url")
	}
	if len(req.Keys) > 0 {
		kinds = append(kinds, "key")
	}
	if req.All {
		kinds = append(kinds, "all")
	}
	return strings.Join(kinds, "+")
}

// logList keeps a purge log line short: the first few items and a count.
func logList(items []string) string {
	const shown = 5
	if len(items) <= shown {
		return strings.Join(items, " ")
	}
	return fmt.Sprintf("%s ... (%d in all)", strings.Join(items[:shown], " "), len(items))
}

// who names the caller in the purge log: its token's name (never the
// token) and its address.
func (a *adminServer) who(r *http.Request) string {
	name, _ := r.Context().Value(tokenNameKey{}).(string)
	if name == "" {
		name = "no-token"
	}
	return name + "@" + r.RemoteAddr
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// guard refuses what a web page could make a browser send to the admin
// API: a Host that does not name the node (DNS rebinding: 421), another
// site's Origin (403), or a body that is not JSON or YAML (a form or a
// text/plain "simple request", which a browser sends cross-site without
// asking: 415).
func (a *adminServer) guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case !a.knownHost(r.Host):
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": fmt.Sprintf("host %q is not this admin API: name it in admin.hosts", r.Host)})
		case crossSite(r):
			writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-site request refused"})
		case r.ContentLength != 0 && !configType(r.Header.Get("Content-Type")):
			writeJSON(w, http.StatusUnsupportedMediaType, map[string]string{"error": "the body must be application/json or application/yaml"})
		default:
			h.ServeHTTP(w, r)
		}
	})
}

// knownHost accepts an IP address (no DNS name is involved, so no
// rebinding), localhost, and the names in admin.hosts; any port.
func (a *adminServer) knownHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	return host == "localhost" || slices.Contains(a.hosts, host)
}

// crossSite reports a request a browser sent on behalf of another site:
// an Origin other than the API's own, or a Sec-Fetch-Site saying so.
func crossSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	u, err := url.Parse(origin)
	return err != nil || u.Scheme != "http" || !strings.EqualFold(u.Host, r.Host)
}

// configType reports whether a Content-Type is JSON or YAML.
func configType(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "application/yaml", "application/x-yaml", "text/yaml":
		return true
	}
	return false
}
