package node

import (
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/fiddle"
	"github.com/outpost-edge/outpost/statuspage"
)

// pages adds the admin listener's web pages: the status page at / and
// the Fiddle at /fiddle/. A page itself is a static file with no data of
// the node (it holds no secret: the same bytes for everyone), so it is
// served without a token; everything it shows comes from JSON endpoints
// behind the token, which the page sends as a bearer token (given in
// the URL's fragment, #token=..., which browsers never send, or typed
// in). The Host and Origin checks of guard apply to all of it.
func (a *adminServer) pages(mux *http.ServeMux) {
	mux.Handle("GET /{$}", statuspage.Handler())
	mux.Handle("GET /status.json", a.auth(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, a.n.Status())
	})))
	fh := fiddle.NewHandler(a.fiddles)
	mux.Handle("GET /fiddle/{$}", fh)
	mux.Handle("GET /fiddle/f/{id}", fh)
	mux.Handle("/fiddle/api/", a.auth(fh))
}

// LocalGuard wraps h in the admin API's refusals of what a web page could
// make a browser send (a Host naming another site: DNS rebinding; another
// site's Origin; a body that is not JSON or YAML), without the token:
// "outpost fiddle" serves the Fiddle on loopback with it.
func LocalGuard(h http.Handler) http.Handler { return (&adminServer{}).guard(h) }

// fiddleStore is where the admin listener's Fiddle saves fiddles:
// admin.fiddle_dir, or "fiddles" in the state directory. The directory is
// made (mode 0700) at the first save. A node with no state directory
// (no home) keeps them in memory, and says so.
func fiddleStore(c config.Admin, log *slog.Logger) *fiddle.Store {
	dir := c.FiddleDir
	if dir == "" {
		state, err := StateDir()
		if err != nil {
			log.Warn("saved fiddles are kept in memory until the node stops: set admin.fiddle_dir to keep them", "error", err)
			return &fiddle.Store{}
		}
		dir = filepath.Join(state, "fiddles")
	}
	return &fiddle.Store{Dir: dir}
}
