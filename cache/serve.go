package cache

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/cache/cachecontrol"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/trace"
)

// job is the state of one Serve call; it lives in the pooled Reply.
type job struct {
	origin Origin // the way to the origin, and the request's context
	req    *httphead.Request
	rq     cachecontrol.Directives
	pol    *Policy
	tr     *trace.Trace
	key    string
	stale  *entry // the stored object being revalidated, nil on a miss
	gen    uint64 // the store's purge generation when the origin request left
	fwd    string // Cache-Status fwd value if the request goes to the origin
	status Status // reply status if it does
	reason Reason
	// collapsed says whether the request waited on another's fetch, and
	// whether that fetch's response served it (RFC 9211 section 2.6).
	collapsed collapse
	stores    *fill   // the fill this request leads and stores, for the trace at Close
	part      partial // the span of a 206 being stored (segment.go)
}

// entry is a stored object looked up for a request.
type entry struct {
	obj storage.Object
	key string // its storage key (the variant key under Vary)
	m   meta
}

// Serve answers req for a route with policy pol, from the cache when it
// may and through origin otherwise. tr may be nil. An error means the origin
// failed and nothing stale could be served; the Reply must be closed
// otherwise.
func (c *Cache) Serve(origin Origin, req *httphead.Request, pol *Policy, tr *trace.Trace) (*Reply, error) {
	r := c.newReply()
	j := &r.j
	*j = job{origin: origin, req: req, pol: pol, tr: tr, fwd: "uri-miss", status: StatusMiss}
	var rep *Reply
	var err error
	var at time.Duration // when the key was recorded; a hit's outcome reuses it
	switch {
	case !pol.Enabled:
		rep, err = c.forward(r, StatusBypass, ReasonDisabled, "bypass")
	case unsafeMethod(req.Method):
		rep, err = c.forward(r, StatusPass, ReasonUnsafe, "method")
	case !pol.allows(req.Method):
		rep, err = c.forward(r, StatusBypass, ReasonMethod, "method")
	default:
		j.rq = requestDirectives(&req.Header)
		r.key = appendKey(r.key[:0], req, &pol.Key)
		j.key = c.keys.intern(r.key)
		if tr != nil {
			at = time.Since(tr.Start)
			tr.Events = append(tr.Events, trace.Event{At: at, Stage: "cache-key", Detail: j.key})
		}
		rep, err = c.serveKey(r, false)
	}
	if err != nil {
		r.Close()
		note(tr, "origin-error")
		return nil, err
	}
	switch {
	case tr == nil:
	case rep.Status == StatusHit: // served in a moment: spare the clock a second read
		tr.Events = append(tr.Events, trace.Event{At: at, Stage: "cache", Detail: rep.Status.String()})
	default:
		tr.Add("cache", rep.Status.String())
		if rep.Reason != ReasonNone {
			tr.Add("cache-reason", rep.Reason.String())
		}
	}
	return rep, nil
}

func unsafeMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return false
	}
	return true
}

// action is what a stored object allows for a request.
type action uint8

const (
	actFresh      action = iota // serve it
	actStale                    // serve it stale (the client accepts it)
	actSWR                      // serve it stale and refresh it in the background
	actRevalidate               // ask the origin first
	actForced                   // ask the origin first: the request demands it
)

// decide applies RFC 9111 section 4 (and RFC 5861) to a stored object.
func decide(m *meta, rq *cachecontrol.Directives, now time.Time) action {
	age := m.age(now)
	remaining := m.lifetime - age
	fresh := remaining > 0 && !m.has(flagAlwaysCheck)
	if !(fresh && m.has(flagImmutable)) &&
		(rq.Has(cachecontrol.NoCache) ||
			(rq.MaxAge != cachecontrol.Unset && age > seconds(rq.MaxAge)) ||
			(rq.MinFresh != cachecontrol.Unset && remaining < seconds(rq.MinFresh))) {
		return actForced
	}
	switch staleness := -remaining; {
	case fresh:
		return actFresh
	case m.has(flagAlwaysCheck):
		return actRevalidate
	case !m.has(flagNoStale) && (rq.Has(cachecontrol.MaxStaleAny) ||
		(rq.MaxStale != cachecontrol.Unset && staleness <= seconds(rq.MaxStale))):
		return actStale
	case staleness < m.swr && rq.MaxStale == cachecontrol.Unset:
		// A request's max-stale bounds stale-while-revalidate too: an
		// edge asks its shield with max-stale=0, so that the shield's
		// window does not stack on the edge's.
		return actSWR
	}
	return actRevalidate
}

// serveKey serves a cacheable request once its key is known. retried is
// set when a collapsed request looks the key up a second time.
func (c *Cache) serveKey(r *Reply, retried bool) (*Reply, error) {
	j := &r.j
	now := c.now()
	found, varyMiss := c.lookup(r, j.key, j.req, &r.e)
	if found {
		j.stale = &r.e
		switch decide(&r.e.m, &j.rq, now) {
		case actFresh:
			return c.serveStored(r, &r.e, now, StatusHit, ReasonNone), nil
		case actStale:
			return c.serveStored(r, &r.e, now, StatusStale, ReasonNone), nil
		case actSWR:
			c.refreshInBackground(j)
			return c.serveStored(r, &r.e, now, StatusStaleUpdating, ReasonNone), nil
		case actForced:
			j.fwd, j.reason = "request", ReasonRequestNoCache
		default:
			j.fwd = "stale"
		}
		j.status = StatusExpired
	} else if varyMiss {
		j.fwd = "vary-miss"
	}
	if j.rq.Has(cachecontrol.OnlyIfCached) {
		return c.gatewayTimeout(r), nil
	}
	if !found && !retried && c.inHitForPass(j.key, now) {
		return c.forward(r, StatusPass, ReasonHitForPass, "bypass")
	}
	if !found {
		c.stats.Misses.Add(1)
	}
	return c.collapse(r, retried)
}

// lookup finds the stored object for key, following a Vary marker to the
// request's variant. varyMiss reports a marker without the variant.
func (c *Cache) lookup(r *Reply, key string, req *httphead.Request, e *entry) (found, varyMiss bool) {
	obj, err := c.store.Lookup(key)
	if err != nil {
		return false, false
	}
	if decodeMeta(obj.Meta(), &e.m) != nil || e.m.kind != kindVary && !e.m.servable(obj) {
		obj.Close()
		c.store.Delete(key)
		return false, false
	}
	if e.m.kind != kindVary {
		e.obj, e.key = obj, key
		return true, false
	}
	r.vkey = appendVariant(append(r.vkey[:0], key...), e.m.epoch, e.m.vary, &req.Header, !r.j.pol.KeepAcceptEncoding)
	purgedAt := e.m.purgedAt
	obj.Close()
	vk := c.keys.intern(r.vkey)
	if obj, err = c.store.Lookup(vk); err != nil {
		return false, true
	}
	if decodeMeta(obj.Meta(), &e.m) != nil || !e.m.servable(obj) {
		obj.Close()
		c.store.Delete(vk)
		return false, true
	}
	if purgedAt >= e.m.respTime { // soft-purged through its marker
		e.m.lifetime = min(e.m.lifetime, e.m.initialAge+time.Duration(purgedAt-e.m.respTime))
	}
	e.obj, e.key = obj, vk
	return true, false
}

// serveStored answers from a stored object; the reply takes it.
func (c *Cache) serveStored(r *Reply, e *entry, now time.Time, st Status, reason Reason) *Reply {
	age := e.m.age(now)
	r.setStoredHead(&e.m)
	r.serveObject(r.j.req, e.obj, &e.m)
	e.obj = nil
	ttl := e.m.lifetime - age.Truncate(time.Second)
	if st != StatusHit {
		// Served stale: RFC 9211 says so with a negative ttl, which a
		// just-expired or soft-purged object would round to 0.
		ttl = min(ttl, -time.Second)
	}
	cs := cacheStatus{hit: true, ttl: ttl, hasTTL: true, detail: reason}
	if r.partial { // segments are missing: RFC 9211 fwd=partial (segment.go)
		cs.hit, cs.fwd, st = false, "partial", StatusMiss
	}
	r.finishHead(age, cs)
	r.Status, r.Reason = st, reason
	switch {
	case st == StatusHit:
		c.stats.Hits.Add(1)
	case r.partial:
		c.stats.Misses.Add(1)
	default:
		c.stats.StaleServed.Add(1)
	}
	if (r.Body != nil || r.BodyBytes != nil) && !r.partial {
		c.stats.BytesFromCache.Add(r.head.ContentLength)
	}
	return r
}

// gatewayTimeout answers only-if-cached when nothing usable is stored
// (RFC 9111 section 5.2.1.7).
func (c *Cache) gatewayTimeout(r *Reply) *Reply {
	r.head.Reset()
	r.head.Status = 504
	r.head.ProtoMajor, r.head.ProtoMinor = 1, 1
	r.head.ContentLength = 0
	r.finishHead(0, cacheStatus{detail: ReasonOnlyIfCached})
	r.Status, r.Reason = StatusGatewayTimeout, ReasonOnlyIfCached
	return r
}

// collapse makes the request the leader of the fetch for its key, or a
// waiter on the fetch already running.
func (c *Cache) collapse(r *Reply, retried bool) (*Reply, error) {
	j := &r.j
	c.mu.Lock()
	f := c.fills[j.key]
	if f == nil && retried {
		j.collapsed = collapseRefetched // the object refreshed for it was not enough
	}
	switch {
	case f == nil && j.rq.Has(cachecontrol.NoStore):
		// Nothing it fetches may be stored, so no one can share it.
		c.mu.Unlock()
		return c.lead(r, privateFill(j.key), j.origin)
	case f == nil:
		f = newFill(j.key)
		c.fills[j.key] = f
		c.mu.Unlock()
		return c.lead(r, f, j.origin.Detach())
	}
	c.mu.Unlock()
	f.wait()
	c.stats.Collapsed.Add(1)
	t := time.NewTimer(j.pol.lockTimeout())
	defer t.Stop()
	j.collapsed = collapseRefetched // unless the fetch waited on serves it, below
	select {
	case <-f.decided:
	case <-t.C:
		f.doneWaiting()
		j.reason = ReasonLockTimeout
		return c.lead(r, privateFill(j.key), j.origin)
	case <-j.origin.Done():
		f.doneWaiting()
		return nil, fmt.Errorf("cache: waiting for a fill: %w", j.origin.Err())
	}
	if f.outcome == outcomeStreaming {
		return c.join(r, f)
	}
	f.doneWaiting()
	switch f.outcome {
	case outcomeUpdated:
		if !retried {
			c.closeStale(j)
			j.collapsed = collapseReused // if the refreshed object is fresh enough for it
			return c.serveKey(r, true)
		}
	case outcomeFailed:
		if j.stale != nil && staleOnError(&j.stale.m, c.now()) {
			j.collapsed = collapseNone // served stale, as without collapsing
			return c.serveStored(r, j.stale, c.now(), StatusStale, ReasonOriginError), nil
		}
		return nil, f.err
	case outcomePass: // the response was uncacheable: go as a pass does
		c.closeStale(j)
		return c.forward(r, StatusPass, ReasonHitForPass, "bypass")
	}
	j.status = StatusPass
	return c.lead(r, privateFill(j.key), j.origin)
}

// join follows a fill that is streaming the response; it ends the
// request's wait on f once it has attached to it, or found it cannot.
func (c *Cache) join(r *Reply, f *fill) (*Reply, error) {
	j := &r.j
	if f.objKey != j.key {
		r.vkey = appendVariant(append(r.vkey[:0], j.key...), f.epoch, f.vary, &j.req.Header, !j.pol.KeepAcceptEncoding)
		if string(r.vkey) != f.objKey {
			f.doneWaiting()
			j.reason = ReasonVaryMismatch
			return c.lead(r, privateFill(j.key), j.origin)
		}
	}
	c.closeStale(j)
	var m meta
	err := decodeMeta(f.metaB, &m)
	attached := err == nil && r.streamFill(&m, f, j.origin)
	f.doneWaiting()
	switch {
	case err != nil:
		return nil, err
	case !attached:
		return c.forward(r, StatusPass, ReasonTooLarge, "bypass")
	}
	j.collapsed = collapseReused
	r.finishHead(m.age(c.now()), cacheStatus{fwd: j.fwd, fwdStatus: m.status, stored: f.committed()})
	r.Status = StatusCollapsed
	return r, nil
}

// streamFill sets the reply's head from m and its body from the fill,
// answering a conditional request that the new response satisfies with a
// 304, and honouring a single Range when the length is known. It fails when the
// fill spilled (its first bytes may be gone): the caller goes to the origin.
func (r *Reply) streamFill(m *meta, f *fill, ctx context.Context) bool {
	r.setStoredHead(m)
	r.head.ContentLength = f.size
	start, end := int64(0), int64(-1)
	req := r.j.req
	if m.status == 200 && preconditionFailed(req, m.headers) {
		r.bodiless(412)
		return true
	}
	if m.status == 200 && notModified(req, m.headers) {
		r.head.Status = 304
		r.head.ContentLength = 0
		return true
	}
	if f.size >= 0 && m.status == 200 && string(req.Method) == "GET" {
		if rng := req.Header.Peek("Range"); rng != nil && ifRangeHolds(req, m.headers) {
			switch s, e, ok := parseRange(rng, f.size); {
			case ok && s < 0:
				r.head.Status = 416
				r.scratch = strconv.AppendInt(append(r.scratch[:0], "bytes */"...), f.size, 10)
				r.setContentRange()
				r.head.ContentLength = 0
				return true
			case ok:
				r.head.Status = 206
				start, end = s, e+1
				r.head.ContentLength = e + 1 - s
				r.scratch = appendContentRange(r.scratch[:0], s, e, f.size)
				r.setContentRange()
			}
		}
	}
	if string(req.Method) == "HEAD" {
		return true
	}
	if !f.attach(&r.fr, ctx, start, end) {
		return false
	}
	r.fill = f
	r.Body = &r.fr
	return true
}

func (c *Cache) closeStale(j *job) {
	if j.stale != nil {
		if j.stale.obj != nil {
			j.stale.obj.Close()
			j.stale.obj = nil
		}
		j.stale = nil
	}
}

// staleOnError reports whether a stored object may be served because the
// origin failed (RFC 5861 section 4).
func staleOnError(m *meta, now time.Time) bool {
	return m.sie > 0 && m.age(now)-m.lifetime <= m.sie
}

// originRequest copies the client's request into o for the origin: a GET for the
// full body, the client's own conditionals and Range removed, the stored
// object's validators added, and with normAE Accept-Encoding reduced to
// the coding the variant key records.
func originRequest(o, req *httphead.Request, stale *entry, normAE bool) {
	o.Reset()
	o.Paths = req.Paths
	o.SetLine([]byte("GET"), req.Target, req.Host, req.Scheme)
	o.ProtoMajor, o.ProtoMinor = req.ProtoMajor, req.ProtoMinor
	o.Header.CopyFrom(&req.Header)
	o.Header.DelFunc(func(name, _ []byte) bool {
		for _, f := range clientConditionals {
			if httphead.EqualFold(name, f) {
				return true
			}
		}
		return false
	})
	if normAE {
		ae := acceptEncoding(&req.Header)
		o.Header.Del("Accept-Encoding")
		if ae != "" {
			o.Header.AddString("Accept-Encoding", ae)
		}
	}
	if stale != nil {
		if etag := headerValue(stale.m.headers, "ETag"); etag != nil {
			o.Header.Add([]byte("If-None-Match"), etag)
		}
		if lm := headerValue(stale.m.headers, "Last-Modified"); lm != nil {
			o.Header.Add([]byte("If-Modified-Since"), lm)
		}
	}
}

var clientConditionals = [...]string{"If-None-Match", "If-Modified-Since", "If-Match",
	"If-Unmodified-Since", "If-Range", "Range"}

// forward sends the client's request to the origin as it is and relays
// the answer; an unsafe method that succeeds invalidates its URIs.
func (c *Cache) forward(r *Reply, st Status, reason Reason, fwd string) (*Reply, error) {
	j := &r.j
	reqTime := c.now()
	resp, body, err := j.origin.Fetch(j.req)
	if err != nil {
		return nil, fmt.Errorf("cache: origin: %w", err)
	}
	if reason == ReasonUnsafe && resp.Status >= 200 && resp.Status < 400 {
		c.invalidate(j.req, j.pol, resp)
	}
	c.stats.Passes.Add(1)
	r.relay(resp, body, initialAge(&resp.Header, reqTime, c.now()), cacheStatus{fwd: fwd, fwdStatus: resp.Status})
	r.Status, r.Reason = st, reason
	return r, nil
}

// relay streams an origin response to the client without storing it.
func (r *Reply) relay(resp *httphead.Response, body io.ReadCloser, age time.Duration, cs cacheStatus) {
	r.setOriginHead(resp, r.j.pol)
	r.origin = originBody{rc: body, stats: &r.c.stats}
	switch status := r.clientPrecondition(resp); {
	case status != 0:
		r.bodiless(status)
		if r.j.tr != nil {
			r.j.tr.Add("precondition", preconditionNames[status/100-3])
		}
	case body != nil && string(r.j.req.Method) != "HEAD":
		r.Body = &r.origin
	}
	r.finishHead(age, cs)
}

// preconditionNames names the answers of clientPrecondition in the trace.
var preconditionNames = [...]string{"304 not modified", "412 failed"}

// clientPrecondition evaluates the client's own preconditions against a
// 200 the cache relays without storing (the cache fetched without them,
// to have a body to store), in the order of RFC 9110 section 13.2.2: 412
// when If-Match or If-Unmodified-Since fails (sections 13.1.1, 13.1.4),
// 304 when If-None-Match or If-Modified-Since says the client has it, 0
// otherwise. Only for GET and HEAD: the origin owns the state an unsafe
// method changes, and was sent its preconditions to judge.
func (r *Reply) clientPrecondition(resp *httphead.Response) int {
	req := r.j.req
	if resp.Status != 200 || string(req.Method) != "GET" && string(req.Method) != "HEAD" ||
		!req.Header.Has("If-Match") && !req.Header.Has("If-Unmodified-Since") &&
			!req.Header.Has("If-None-Match") && !req.Header.Has("If-Modified-Since") {
		return 0
	}
	r.scratch = resp.Header.AppendTo(r.scratch[:0])
	switch {
	case preconditionFailed(req, r.scratch):
		return 412
	case notModified(req, r.scratch):
		return 304
	}
	return 0
}
