// Package chain runs origins in a fallback order: a request goes to the
// first hop, and on to the next when the hop answers with one of the
// chain's statuses (404 and 403 by default), fails, or cannot be used: a
// primary bucket, then an archive bucket, then the application. Each hop
// keeps its own retries and failover; the chain only moves between them.
//
// The hop that answered is recorded in the trace ("origin") and in the
// response's HopField, which the cache stores with the response (a hit
// can then say where its object came from); the App turns the field into
// the detail parameter of its Cache-Status member (see MarkCacheStatus)
// and removes it before the response leaves.
package chain

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Hop is one origin of a chain.
type Hop struct {
	Name     string // the upstream's name, for the trace and Cache-Status
	Upstream proxy.Upstream
}

// Chain is a proxy.Upstream over its hops.
type Chain struct {
	hops []Hop
	on   []int // statuses that move a request to the next hop
}

// New returns a chain over hops (at least one) that moves on for the
// statuses in on.
func New(hops []Hop, on []int) *Chain {
	return &Chain{hops: hops, on: on}
}

// walk is a request's place in a chain, kept per connection.
type walk struct {
	hop      int  // index of the hop being tried
	base     int  // the engine's attempt number of the hop's first attempt
	noAnswer bool // the last attempt got no response (and the client is there)
}

// HopField carries the name of the hop that answered from the chain to
// the App, through the cache.
const HopField = "Outpost-Origin-Hop"

var walkKey = proxy.NewKey[*walk]()

func walkOf(c *proxy.Ctx) *walk {
	w, ok := walkKey.Get(c)
	if !ok {
		w = &walk{}
		walkKey.Set(c, w)
	}
	return w
}

// Pick implements proxy.Upstream. A hop none of whose servers can take
// the request, or that has no server left to try after attempts that got
// no answer, passes it to the next.
func (ch *Chain) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	w := walkOf(c)
	if n == 0 {
		*w = walk{}
	}
	for {
		p, err := ch.hops[w.hop].Upstream.Pick(c, n-w.base)
		if err == nil || w.hop+1 == len(ch.hops) {
			return p, err
		}
		why := " (previous hop unavailable)"
		if n > w.base {
			if !w.noAnswer || bodySent(c) {
				return p, err // the hop's last answer stands
			}
			why = " (previous hop failed)"
		}
		w.hop, w.base = w.hop+1, n
		c.Trace.Add("fallback", ch.hops[w.hop].Name+why)
	}
}

// Finish implements proxy.Upstream: the hop judges its own attempt first;
// when it is done with the request and the answer is one of the chain's
// statuses, the next hop gets it.
func (ch *Chain) Finish(c *proxy.Ctx, p proxy.Peer, n int, resp *httphead.Response, err error, took time.Duration) bool {
	w := walkOf(c)
	w.noAnswer = resp == nil && !errors.Is(err, context.Canceled)
	if ch.hops[w.hop].Upstream.Finish(c, p, n-w.base, resp, err, took) {
		return true
	}
	if resp == nil {
		// The hop gave no answer, its own retries spent: the next hop
		// may have one, unless the client is gone or the body was sent.
		if w.hop+1 < len(ch.hops) && w.noAnswer && !bodySent(c) {
			w.hop, w.base = w.hop+1, n+1
			c.Trace.Add("fallback", ch.hops[w.hop].Name+" (previous hop failed)")
			return true
		}
		return false
	}
	if w.hop+1 < len(ch.hops) && ch.moveOn(resp.Status) {
		if !bodySent(c) {
			w.hop, w.base = w.hop+1, n+1
			c.Trace.Add("fallback", ch.hops[w.hop].Name+" (previous hop said "+strconv.Itoa(resp.Status)+")")
			return true
		}
		// The next hop would get the request without its body.
		c.Trace.Add("fallback", "not taken: the request body was sent")
	}
	c.Trace.Add("origin", ch.hops[w.hop].Name)
	resp.Header.Set(HopField, ch.hops[w.hop].Name)
	return false
}

// bodySent reports whether the request had a body that went to a hop and
// was not kept for another (see proxy.Route.ReplayBody).
func bodySent(c *proxy.Ctx) bool {
	req := c.Request
	return (req.ContentLength != 0 || req.Chunked) && !c.Route.Replayable(req)
}

func (ch *Chain) moveOn(status int) bool {
	for _, s := range ch.on {
		if s == status {
			return true
		}
	}
	return false
}

var cacheStatus = []byte("Cache-Status")

// MarkCacheStatus names the hop in the detail parameter of the last
// Cache-Status member (this cache's, RFC 9211 section 2) of h, as the
// string "origin=NAME", after any detail the cache gave. A response
// without Cache-Status is left alone.
func MarkCacheStatus(h *httphead.Header, hop string) {
	var last []byte
	h.Values("Cache-Status", func(v []byte) bool { last = v; return true })
	if last == nil {
		return
	}
	i := bytes.LastIndexByte(last, ',')
	member := string(last[i+1:])
	head := string(last[:i+1])
	detail := "origin=" + hop
	if j := bytes.Index([]byte(member), []byte("; detail=")); j >= 0 {
		// RFC 9211 section 2.8: one detail, a token or a string.
		old := member[j+len("; detail="):]
		if k := bytes.IndexByte([]byte(old), ';'); k >= 0 {
			old = old[:k]
		}
		detail = old + " " + detail
		member = member[:j] + member[j+len("; detail=")+len(old):]
	}
	v := head + member + `; detail="` + detail + `"`
	// Replace the last Cache-Status field with the marked value.
	var all []string
	h.Values("Cache-Status", func(b []byte) bool { all = append(all, string(b)); return true })
	h.Del("Cache-Status")
	for _, old := range all[:len(all)-1] {
		h.Add(cacheStatus, []byte(old))
	}
	h.Add(cacheStatus, []byte(v))
}
