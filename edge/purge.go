package edge

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
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
	targets := make([]*httphead.Request, len(r.URLs))
	for i, u := range r.URLs {
		t, err := a.purgeRequest(u)
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

// CheckPurge checks a purge as Purge does, purging nothing.
func (a *App) CheckPurge(r PurgeRequest) error {
	if a.shared.purger == nil {
		return ErrNoCache
	}
	for _, u := range r.URLs {
		if _, err := a.purgeRequest(u); err != nil {
			return err
		}
	}
	return nil
}

// purgeRequest is the canonical GET of a URL to purge: the same identity
// (host, normalised path, path policy) a client's request for it has.
func (a *App) purgeRequest(raw string) (*httphead.Request, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("purge: %q is not an absolute http(s) URL", raw)
	}
	req := &httphead.Request{Paths: a.cfg.Proxy.Paths(), ProtoMajor: 1, ProtoMinor: 1}
	req.SetLine([]byte("GET"), []byte(u.RequestURI()), []byte(u.Host), []byte(u.Scheme))
	if err := req.Validate(); err != nil {
		return nil, fmt.Errorf("purge: %q: %w", raw, err)
	}
	return req, nil
}

// purgeTarget purges the object a GET of req finds, with its variants,
// under the key of every caching route whose host and path match req:
// keys start with the route, and a URL may be cached by several (a canary
// route chosen by a header). A soft purge that finds nothing stored purges
// hard, which marks the key so that a fill under way (fetched before the
// purge) is not stored.
func (a *App) purgeTarget(req *httphead.Request, soft bool) int {
	var pols []*cache.Policy
	for _, r := range a.routes {
		if rc, ok := r.Cache.(*routeCache); ok && r.MatchURL(req) {
			pols = append(pols, &rc.pol)
		}
	}
	c := a.shared.cache.c
	return a.shared.purger.URL(func() bool {
		found := false
		for _, pol := range pols {
			if c.PurgeURL(pol, req, soft) || (soft && c.PurgeURL(pol, req, false)) {
				found = true
			}
		}
		return found
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
	if a.shared.ClusterPurge != nil {
		return a.clusterPurgeMethod(c, soft)
	}
	n := a.purgeTarget(c.Request, soft)
	c.Trace.Add("purge", "url")
	a.shared.Log.Info("purge", "who", "PURGE@"+c.Client.String(), "kind", "url", "soft", soft,
		"urls", string(c.Request.Scheme)+"://"+string(c.Request.Host)+string(c.Request.ForwardTarget(nil)), "objects", n, "took", time.Since(start).String())
	var h httphead.Header
	h.AddString("Content-Type", "application/json")
	status := 200
	if n == 0 {
		status = 404
	}
	return c.Respond(status, &h, []byte(fmt.Sprintf("{\"objects\":%d}\n", n)))
}

// clusterPurgeMethod answers a PURGE method on a node in a cluster: the
// purge is run on every node (see Shared.ClusterPurge); 503 when it could
// not be stored, so nothing was purged.
func (a *App) clusterPurgeMethod(c *proxy.Ctx, soft bool) error {
	u := string(c.Request.Scheme) + "://" + string(c.Request.Host) + string(c.Request.ForwardTarget(nil))
	res, err := a.shared.ClusterPurge(PurgeRequest{URLs: []string{u}, Soft: soft}, "PURGE@"+c.Client.String())
	c.Trace.Add("purge", "cluster")
	if err != nil {
		return proxy.Errorf(503, proxy.FromDownstream, err.Error(), err)
	}
	body, err := json.Marshal(res)
	if err != nil {
		return err
	}
	var h httphead.Header
	h.AddString("Content-Type", "application/json")
	return c.Respond(200, &h, append(body, '\n'))
}
