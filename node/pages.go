package node

import (
	"net/http"

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
	fh := fiddle.NewHandler(&fiddle.Store{}) // saved fiddles live as long as the process
	mux.Handle("GET /fiddle/{$}", fh)
	mux.Handle("GET /fiddle/f/{id}", fh)
	mux.Handle("/fiddle/api/", a.auth(fh))
}

// LocalGuard wraps h in the admin API's refusals of what a web page could
// make a browser send (a Host naming another site: DNS rebinding; another
// site's Origin; a body that is not JSON or YAML), without the token:
// "outpost fiddle" serves the Fiddle on loopback with it.
func LocalGuard(h http.Handler) http.Handler { return (&adminServer{}).guard(h) }
