package edge

import (
	"bytes"
	"fmt"
	"io"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Shielder picks the shield a miss goes to (see package cluster).
type Shielder interface {
	// Shield returns the address of the shield of site for a request
	// for host and target, or "" when there is none to ask.
	Shield(site string, host, target []byte) string
	// Name is this node's name, which it adds to HopsHeader.
	Name() string
}

// HopsHeader lists the nodes a request passed through on its way to a
// shield ("edge1, shield1"): a node that finds its own name there, or
// maxHops names, refuses it with 508 (RFC 5842 section 7.2) rather than
// send it around again. It is removed before a request goes to an origin.
const HopsHeader = "X-Outpost-Hops"

// maxHops bounds the shield tiers a request may pass through.
const maxHops = 4

// errLoop is the answer to a request that came back to a node.
var errLoop = &proxy.Error{Status: 508, Reason: "loop detected: this request already passed through this node", Source: proxy.FromDownstream}

// shieldUpstream sends a route's GET and HEAD misses to a shield of site
// first (attempt 0), then to the route's upstream, starting from its
// first attempt, when no shield is up or the shield fails.
type shieldUpstream struct {
	inner   proxy.Upstream
	site    string
	shields Shielder
}

func (u *shieldUpstream) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	a := attemptOf(c)
	if n == 0 {
		a.shield = ""
		req := c.Request
		if req.IsMethod("GET") || req.IsMethod("HEAD") {
			hops := req.Header.Peek(HopsHeader)
			a.shield = u.shields.Shield(u.site, req.Host, req.Target)
			if a.shield == "" {
				c.Trace.Add("shield", "no shield of "+u.site+" to ask: the origin")
				return u.inner.Pick(c, 0)
			}
			c.Trace.Add("shield", u.site)
			return &shieldPeer{addr: a.shield, hops: appendHop(hops, u.shields.Name())}, nil
		}
	}
	if a.shield != "" {
		n--
	}
	return u.inner.Pick(c, n)
}

func (u *shieldUpstream) Finish(c *proxy.Ctx, p proxy.Peer, n int, resp *httphead.Response, err error, took time.Duration) bool {
	a := attemptOf(c)
	if _, ok := p.(*shieldPeer); ok {
		if err != nil {
			// The shield is down or slow: the origin, as if unshielded.
			c.Trace.Add("shield", "failed: the origin")
			return true
		}
		return false
	}
	if a.shield != "" {
		n--
	}
	return u.inner.Finish(c, p, n, resp, err, took)
}

// looped reports whether the request already passed through this node,
// or through too many: it is refused before it reaches the cache, where
// it would wait on the fetch that sent it around.
func (u *shieldUpstream) looped(c *proxy.Ctx) bool {
	hops := c.Request.Header.Peek(HopsHeader)
	if len(hops) == 0 {
		return false
	}
	if passedThrough(hops, u.shields.Name()) {
		c.Trace.Add("shield", "loop: "+string(hops))
		return true
	}
	return false
}

// passedThrough reports whether a request with hops passed through the
// node called name, or through too many nodes.
func passedThrough(hops []byte, name string) bool {
	count := 0
	for len(hops) > 0 {
		var hop []byte
		hop, hops, _ = bytes.Cut(hops, []byte(","))
		if hop = httphead.TrimOWS(hop); len(hop) == 0 {
			continue
		}
		if count++; count >= maxHops || string(hop) == name {
			return true
		}
	}
	return false
}

// appendHop is hops with name added.
func appendHop(hops []byte, name string) string {
	if len(hops) == 0 {
		return name
	}
	return fmt.Sprintf("%s, %s", hops, name)
}

// shieldPeer is the shield a miss goes to.
type shieldPeer struct {
	addr, hops string
}

func (p *shieldPeer) Addr() string { return p.addr }

// RoundTrip asks the shield with this node added to the hops, and with
// max-stale=0: the shield answers from the origin rather than with its
// own stale-while-revalidate copy, so that stale windows do not stack;
// the edge's own apply to what it stores. Both fields are taken off
// again: a retry goes to an origin.
func (p *shieldPeer) RoundTrip(c *proxy.Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	cc := string(req.Header.Peek("Cache-Control"))
	had := req.Header.Has("Cache-Control")
	if had {
		req.Header.Set("Cache-Control", cc+", max-stale=0")
	} else {
		req.Header.Set("Cache-Control", "max-stale=0")
	}
	req.Header.Set(HopsHeader, p.hops)
	defer func() {
		req.Header.Del(HopsHeader)
		if had {
			req.Header.Set("Cache-Control", cc)
		} else {
			req.Header.Del("Cache-Control")
		}
	}()
	return peerTransport.RoundTrip(c, p.addr, req, body, resp)
}

// shieldSite is the site of the shield of route rc's upstream, or "".
func (a *App) shieldSite(rc *config.Route) string {
	if u := a.cfg.Upstreams[rc.Upstream]; u != nil && a.shared.Shield != nil {
		return u.Shield
	}
	return ""
}
