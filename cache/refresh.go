package cache

import (
	"errors"

	"github.com/outpost-edge/outpost/httphead"
)

var errRefreshPanic = errors.New("cache: background refresh panicked")

// refreshInBackground starts one stale-while-revalidate refresh for the
// job's key, unless a fetch for it is already running. The goroutine owns
// a copy of the request and a detached context; it stops when the fetch
// and, for a stored response, the fill are done.
func (c *Cache) refreshInBackground(j *job) {
	c.mu.Lock()
	if c.fills[j.key] != nil {
		c.mu.Unlock()
		return
	}
	f := newFill(j.key)
	c.fills[j.key] = f
	c.mu.Unlock()

	req := &httphead.Request{Paths: j.req.Paths}
	req.SetLine(j.req.Method, j.req.Target, j.req.Host, j.req.Scheme)
	req.ProtoMajor, req.ProtoMinor = j.req.ProtoMajor, j.req.ProtoMinor
	req.Header.CopyFrom(&j.req.Header)
	bj := job{origin: j.origin.Detach(), req: req, pol: j.pol, key: j.key,
		fwd: "stale", status: StatusExpired}
	bj.rq.Reset() // the refresh is the cache's, not the client's: no request directives
	c.background(func() {
		r := c.newReply()
		r.j = bj
		defer func() {
			if p := recover(); p != nil {
				c.log.Error("cache refresh panicked", "key", bj.key, "panic", p)
				c.settle(f, outcomeFailed, ReasonOriginError, errRefreshPanic)
			}
			r.Close()
		}()
		if found, _ := c.lookup(r, bj.key, req, &r.e); found {
			r.j.stale = &r.e
		}
		if _, err := c.lead(r, f, bj.origin); err != nil {
			c.log.Debug("cache refresh failed", "key", bj.key, "err", err)
		}
	})
}
