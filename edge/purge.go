package edge

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/cache"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
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

// Purge runs a purge; it is effective when it returns. The URLs are all
// checked before anything is purged, so a bad one purges nothing.
func (a *App) Purge(r PurgeRequest) (PurgeResult, error) {
	p := a.shared.purger
	if p == nil {
		return PurgeResult{}, ErrNoCache
	}
	targets := make([]purgeTarget, len(r.URLs))
	for i, u := range r.URLs {
		t, err := parsePurgeURL(u)
		if err != nil {
			return PurgeResult{}, err
		}
		targets[i] = t
	}
	var res PurgeResult
	for _, t := range targets {
		res.Objects += a.purgeTarget(t, r.Soft)
	}
	if len(r.Keys) > 0 {
		res.Objects += p.Keys(r.Keys, r.Soft)
	}
	if r.All {
		res.Objects += p.All(r.Soft)
	}
	return res, nil
}

// purgeTarget is a URL to purge, split as the cache keys it.
type purgeTarget struct{ scheme, host, target string }

func parsePurgeURL(raw string) (purgeTarget, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return purgeTarget{}, fmt.Errorf("purge: %q is not an absolute http(s) URL", raw)
	}
	return purgeTarget{u.Scheme, strings.ToLower(u.Host), u.RequestURI()}, nil
}

// purgeTarget purges the object a GET of t finds, with its variants, under
// the cache key of the route that serves t. A soft purge that finds
// nothing stored purges hard, which marks the key so that a fill under way
// (fetched before the purge) is not stored.
func (a *App) purgeTarget(t purgeTarget, soft bool) int {
	var req httphead.Request
	req.SetLine([]byte("GET"), []byte(t.target), []byte(t.host), []byte(t.scheme))
	var pol *cache.Policy
	for _, r := range a.routes {
		if r.matchRequest(&req) {
			if rc, ok := r.Cache.(*routeCache); ok {
				pol = &rc.pol
			}
			break
		}
	}
	c := a.shared.cache.c
	return a.shared.purger.URL(func() bool {
		if pol == nil {
			return false
		}
		return c.PurgeURL(pol, t.scheme, t.host, t.target, soft) || (soft && c.PurgeURL(pol, t.scheme, t.host, t.target, false))
	})
}

// purgeMethod answers the HTTP PURGE method for the request's URL, from
// the networks the config allows, and logs it as the admin API logs its
// purges (the caller is named by its address).
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
	start := time.Now()
	soft := string(c.Request.Header.Peek("Soft-Purge")) == "1"
	t := purgeTarget{string(c.Request.Scheme), strings.ToLower(string(c.Request.Host)), string(c.Request.Path) + query(c.Request)}
	n := a.purgeTarget(t, soft)
	c.Trace.Add("purge", "url")
	a.shared.Log.Info("purge", "who", "PURGE@"+c.Client.String(), "kind", "url", "soft", soft,
		"urls", t.scheme+"://"+t.host+t.target, "objects", n, "took", time.Since(start).String())
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
