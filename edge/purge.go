package edge

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/purge"
)

// PurgeRequest is one purge call of the admin API.
type PurgeRequest struct {
	URLs []string
	Keys []string
	All  bool
	Soft bool
}

// PurgeResult says what a purge did.
type PurgeResult struct {
	Objects int `json:"objects"`
}

// ErrNoCache is returned by purges on a node without cache storage.
var ErrNoCache = errors.New("no cache storage is configured")

// Purge runs a purge; it is effective when it returns.
func (a *App) Purge(r PurgeRequest) (PurgeResult, error) {
	p := a.shared.purger
	if p == nil {
		return PurgeResult{}, ErrNoCache
	}
	var res PurgeResult
	for _, u := range r.URLs {
		n, err := a.purgeURL(u, r.Soft)
		if err != nil {
			return res, err
		}
		res.Objects += n
	}
	if len(r.Keys) > 0 {
		res.Objects += p.Keys(r.Keys, r.Soft)
	}
	if r.All {
		res.Objects += p.All(r.Soft)
	}
	return res, nil
}

// purgeURL purges the object a GET of u finds, with its variants, under
// the cache key of the route that serves u.
func (a *App) purgeURL(raw string, soft bool) (int, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return 0, fmt.Errorf("purge: %q is not an absolute http(s) URL", raw)
	}
	target := u.RequestURI()
	return a.purgeTarget(u.Scheme, strings.ToLower(u.Host), target, soft), nil
}

func (a *App) purgeTarget(scheme, host, target string, soft bool) int {
	var req httphead.Request
	req.SetLine([]byte("GET"), []byte(target), []byte(host), []byte(scheme))
	n := 0
	for _, r := range a.routes {
		rc, ok := r.Cache.(*routeCache)
		if !ok || !r.matches(&req) {
			continue
		}
		if a.shared.cache.c.PurgeURL(&rc.pol, scheme, host, target, soft) {
			n = 1
		}
		break
	}
	a.shared.purger.Counted(purge.ByURL, n)
	return n
}

// purgeMethod answers the HTTP PURGE method for the request's URL, from
// the networks the config allows.
func (a *App) purgeMethod(c *proxy.Ctx) error {
	allowed := false
	for _, p := range a.purgeFrom {
		if p.Contains(c.Client.Addr().Unmap()) {
			allowed = true
			break
		}
	}
	if !allowed {
		c.Trace.Add("purge", "refused")
		return proxy.Errorf(403, proxy.FromDownstream, "PURGE not allowed from this address", nil)
	}
	if a.shared.purger == nil {
		return proxy.Errorf(404, proxy.FromDownstream, "no cache here", nil)
	}
	soft := string(c.Request.Header.Peek("Soft-Purge")) == "1"
	n := a.purgeTarget(string(c.Request.Scheme), string(c.Request.Host), string(c.Request.Path)+query(c.Request), soft)
	c.Trace.Add("purge", "url")
	var h httphead.Header
	h.AddString("Content-Type", "application/json")
	status := 200
	if n == 0 {
		status = 404
	}
	return c.Respond(status, &h, []byte(fmt.Sprintf("{\"objects\":%d}\n", n)))
}

func query(r *httphead.Request) string {
	if r.Query == nil {
		return ""
	}
	return "?" + string(r.Query)
}
