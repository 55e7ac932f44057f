package edge

import (
	"io"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	routing "github.com/outpost-edge/outpost/route"
	"github.com/outpost-edge/outpost/stats"
	"github.com/outpost-edge/outpost/wasm"
)

// route is a config route compiled: its head conditions (route.Matcher,
// on the canonical request), its condition expression, and what serves it.
type route struct {
	proxy.Route
	*routing.Matcher
	cfg     *config.Route
	respond *staticResponse
	stats   *stats.Route
	limits  []rateLimit
	geo     expr.Geo   // for `country` in expressions; nil without a database
	wasm    wasm.Chain // the Proxy-Wasm filters it runs; nil for none
}

type staticResponse struct {
	status int
	header httphead.Header
	body   []byte
}

func compileRoute(cfg *config.Route, st *stats.Route) *route {
	r := &route{cfg: cfg, stats: st, Matcher: routing.Compile(&cfg.Match)}
	r.Name = cfg.Name
	r.App = r
	if cfg.Respond != nil {
		r.respond = &staticResponse{status: cfg.Respond.Status, body: []byte(cfg.Respond.Body)}
		for name, v := range cfg.Respond.Headers {
			r.respond.header.AddString(name, v)
		}
		if !r.respond.header.Has("Content-Type") {
			r.respond.header.AddString("Content-Type", "text/plain; charset=utf-8")
		}
	}
	return r
}

// matches reports whether the route serves c's request. It allocates
// nothing.
func (r *route) matches(c *proxy.Ctx) bool {
	if !r.MatchRequest(c.Request) {
		return false
	}
	if cond := r.cfg.Match.Condition; cond != nil {
		ok, err := cond.Eval(exprVars(c, r.geo))
		if err != nil {
			c.Trace.Add("route-expr-error", r.Name)
		}
		return ok
	}
	return true
}

// staticResponse answers a route by itself, as an upstream that is always
// there: it can be cached and filtered like any other response.
func (s *staticResponse) Pick(*proxy.Ctx, int) (proxy.Peer, error) { return s, nil }

func (s *staticResponse) Finish(*proxy.Ctx, proxy.Peer, int, *httphead.Response, error, time.Duration) bool {
	return false
}

func (s *staticResponse) Addr() string { return "static" }

func (s *staticResponse) RoundTrip(_ *proxy.Ctx, _ *httphead.Request, _ io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	resp.Status = s.status
	resp.ProtoMajor, resp.ProtoMinor = 1, 1
	resp.Header.CopyFrom(&s.header)
	resp.ContentLength = int64(len(s.body))
	return proxy.NewMemBody(s.body), nil
}
