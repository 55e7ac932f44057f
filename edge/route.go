package edge

import (
	"bytes"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/stats"
)

// route is a config route compiled for matching without allocation.
type route struct {
	proxy.Route
	cfg      *config.Route
	hosts    []string // exact names
	suffixes []string // ".example.org" for "*.example.org"
	prefix   []byte
	exact    []byte
	re       *regexp.Regexp
	methods  [][]byte
	headers  []headerMatch
	respond  *staticResponse
	stats    *stats.Route
	limits   []rateLimit
	geo      expr.Geo // for `country` in expressions; nil without a database
}

type headerMatch struct {
	name  string
	value []byte // nil: the header must only be present
}

type staticResponse struct {
	status int
	header httphead.Header
	body   []byte
}

func compileRoute(cfg *config.Route, st *stats.Route) *route {
	r := &route{cfg: cfg, stats: st, re: cfg.Match.PathRegexp}
	r.Name = cfg.Name
	r.App = r
	for _, h := range cfg.Match.Hosts {
		if rest, ok := strings.CutPrefix(h, "*"); ok {
			r.suffixes = append(r.suffixes, rest)
		} else {
			r.hosts = append(r.hosts, h)
		}
	}
	if cfg.Match.PathPrefix != "" {
		r.prefix = []byte(cfg.Match.PathPrefix)
	}
	if cfg.Match.PathExact != "" {
		r.exact = []byte(cfg.Match.PathExact)
	}
	for _, m := range cfg.Match.Methods {
		r.methods = append(r.methods, []byte(m))
	}
	for name, v := range cfg.Match.Headers {
		hm := headerMatch{name: name}
		if v != "*" {
			hm.value = []byte(v)
		}
		r.headers = append(r.headers, hm)
	}
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
	if !r.matchRequest(c.Request) {
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

// matchRequest checks the conditions that need only the request head.
func (r *route) matchRequest(req *httphead.Request) bool {
	if !r.matchURL(req) {
		return false
	}
	if len(r.methods) > 0 && !r.matchMethod(req.Method) {
		return false
	}
	for _, hm := range r.headers {
		v := req.Header.Peek(hm.name)
		if v == nil || hm.value != nil && !bytes.Equal(v, hm.value) {
			return false
		}
	}
	return true
}

// matchURL checks the route's host and path conditions, on the request's
// canonical host and normalised path.
func (r *route) matchURL(req *httphead.Request) bool {
	if len(r.hosts)+len(r.suffixes) > 0 && !r.matchHost(hostOnly(req.Host)) {
		return false
	}
	switch {
	case r.exact != nil && !bytes.Equal(req.Path, r.exact):
		return false
	case r.prefix != nil && !bytes.HasPrefix(req.Path, r.prefix):
		return false
	case r.re != nil && !r.re.Match(req.Path):
		return false
	}
	return true
}

func (r *route) matchHost(host []byte) bool {
	for _, h := range r.hosts {
		if string(host) == h {
			return true
		}
	}
	for _, s := range r.suffixes {
		if len(host) > len(s) && string(host[len(host)-len(s):]) == s {
			return true
		}
	}
	return false
}

func (r *route) matchMethod(m []byte) bool {
	for _, x := range r.methods {
		if bytes.Equal(m, x) {
			return true
		}
	}
	return false
}

// hostOnly strips the port from a Host value ("example.org:8080",
// "[::1]:8080").
func hostOnly(h []byte) []byte {
	if len(h) > 0 && h[0] == '[' {
		if i := bytes.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	if i := bytes.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
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
	return io.NopCloser(bytes.NewReader(s.body)), nil
}
