package cache

import (
	"bytes"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/cache/cachecontrol"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage"
)

// lead fetches from the origin for a miss or a revalidation and decides
// the fill f: stream-and-store, refresh after a 304, pass, or fail. f is
// registered in c.fills (other requests wait on it) or private to this
// request (lock timeout, another variant, a request that said no-store).
// origin is the fetch's: detached from the client for a registered fill,
// whose body others follow after the leader's client may have gone; the
// request's own for a private one, whose body no one else needs.
func (c *Cache) lead(r *Reply, f *fill, origin Origin) (*Reply, error) {
	j := &r.j
	f.hfpTTL = j.pol.hitForPassTTL()
	originRequest(&r.oreq, j.req, j.stale, !j.pol.KeepAcceptEncoding)
	if j.stale == nil || j.stale.m.kind == kindSegmented {
		c.segmentRequest(r) // a Range miss asks for whole segments (segment.go)
	}
	j.gen = c.generation() // before the request leaves: a purge from now on catches this fetch
	reqTime := c.now()
	resp, body, err := origin.Fetch(&r.oreq)
	respTime := c.now()
	if err == nil && resp.Status >= 500 && j.stale != nil && staleOnError(&j.stale.m, respTime) {
		body.Close()
		err = fmt.Errorf("cache: origin answered %d", resp.Status)
	}
	if err != nil {
		c.settle(f, outcomeFailed, ReasonOriginError, err)
		if j.stale != nil && staleOnError(&j.stale.m, respTime) {
			note(j.tr, "stale-if-error")
			return c.serveStored(r, j.stale, respTime, StatusStale, ReasonOriginError), nil
		}
		return nil, fmt.Errorf("cache: origin: %w", err)
	}
	if resp.Status == 304 && j.stale != nil {
		body.Close()
		return c.revalidated(r, f, resp, reqTime, respTime)
	}
	switch {
	case resp.Status == 206:
		return c.admitPartial(r, f, resp, body, reqTime, respTime)
	case resp.Status == 416 && r.oreq.Header.Has("Range"): // the aligned range, not the URL, was refused
		return c.passPartial(r, f, body, "range not satisfiable")
	}
	return c.admit(r, f, resp, body, reqTime, respTime)
}

// settle publishes an outcome that needs no fill and unregisters f.
func (c *Cache) settle(f *fill, o outcome, reason Reason, err error) {
	f.decide(o, reason, err)
	c.mu.Lock()
	if c.fills[f.key] == f {
		delete(c.fills, f.key)
	}
	c.mu.Unlock()
}

// admit decides whether a full origin response is stored, and streams it
// to the client either through the fill or straight from the origin.
func (c *Cache) admit(r *Reply, f *fill, resp *httphead.Response, body io.ReadCloser, reqTime, respTime time.Time) (*Reply, error) {
	j := &r.j
	d, targeted := responseDirectives(&resp.Header, j.pol)
	reason := storable(j.req, &j.rq, resp, &d, j.pol)
	flags := objectFlags(&resp.Header, &d)
	ttl, src := lifetime(&resp.Header, &d, targeted, j.pol, respTime)
	if reason == ReasonNone && (ttl <= 0 || flags&flagAlwaysCheck != 0) && flags&flagHasValidator == 0 {
		reason = ReasonNoFreshness // every use would be a full fetch anyway
	}
	age := initialAge(&resp.Header, reqTime, respTime)
	m := meta{kind: kindObject, status: resp.Status, flags: flags, respTime: respTime.UnixNano(),
		initialAge: age, lifetime: ttl}
	size := resp.ContentLength
	if !httphead.BodyAllowed([]byte("GET"), resp.Status) {
		size = 0
	}
	if reason == ReasonStatus && resp.Status >= 500 && f.hasWaiters() {
		// An origin error with clients waiting on it: they all get this
		// one answer instead of each asking a failing origin again.
		c.stats.NotStored.Add(1)
		if j.tr != nil {
			j.tr.Add("cache-store", "not stored: error relayed to the waiting requests")
		}
		c.settleRelay(f)
		m.headers, m.edge = storedHeaders(&resp.Header, &d, j.pol)
		c.startFill(r, f, &m, j.key, size, relayOnly{}, body)
		r.addOwnFields(&resp.Header, &d, j.pol)
		r.finishHead(age, cacheStatus{fwd: j.fwd, fwdStatus: resp.Status, detail: reason})
		c.closeStale(j)
		r.Status, r.Reason = StatusMiss, reason
		return r, nil
	}
	if reason != ReasonNone && j.part.ok {
		return c.passPartial(r, f, body, reason.String())
	}
	if reason != ReasonNone {
		return c.pass(r, f, resp, body, age, reason), nil
	}
	m.swr, m.sie = staleWindows(&d, flags, j.pol)
	m.headers, m.edge = storedHeaders(&resp.Header, &d, j.pol)
	m.tags = joinValues(&resp.Header, j.pol.surrogateKeyField(), ' ')
	objKey := j.key
	if vary := joinValues(&resp.Header, "Vary", ','); vary != nil {
		var purgedAt int64
		f.epoch, purgedAt = c.varyMarker(j.key, vary, respTime, j.gen)
		f.vary = vary
		if purgedAt >= reqTime.UnixNano() {
			// Soft-purged through its marker after the request left: the
			// new variant is as stale as the others.
			m.lifetime = min(m.lifetime, m.initialAge)
		}
		objKey = string(appendVariant([]byte(j.key), f.epoch, vary, &j.req.Header, !j.pol.KeepAcceptEncoding))
		if j.tr != nil {
			j.tr.Add("cache-variant", variantDetail(objKey, j.key))
		}
	}
	if j.part.ok || j.pol.segmented(size) && validatorOf(m.headers) != nil {
		return c.fillSegments(r, f, &m, objKey, resp, body, age, src)
	}
	metaB := m.encode(nil)
	w, err := c.create(objKey, metaB, size, j.gen)
	if errors.Is(err, storage.ErrTooLarge) && validatorOf(m.headers) != nil {
		return c.fillSegments(r, f, &m, objKey, resp, body, age, src) // too large to store whole
	}
	if err != nil {
		reason = ReasonStoreError
		if errors.Is(err, storage.ErrTooLarge) {
			reason = ReasonTooLarge
		}
		return c.pass(r, f, resp, body, age, reason), nil
	}
	c.clearHitForPass(j.key)
	if j.tr != nil {
		j.tr.Add("cache-ttl", strconv.FormatInt(int64(ttl/time.Second), 10)+"s from "+src)
		j.tr.Add("cache-store", "storing")
	}
	f.metaB = metaB
	c.startFill(r, f, &m, objKey, size, w, body)
	r.addOwnFields(&resp.Header, &d, j.pol)
	traceSetCookie(j, &resp.Header)
	// The head goes out before the body is in: it says stored only for an
	// empty body, committed before the head (startFill), and the trace says
	// what became of the others when the reply is closed (see Reply.Close).
	// A small body may be in before the head leaves, but saying so would
	// depend on the copier's timing.
	stored := size == 0 && f.committed()
	j.stores = f
	r.finishHead(age, cacheStatus{fwd: j.fwd, fwdStatus: resp.Status, stored: stored, ttl: ttl - age.Truncate(time.Second), hasTTL: true})
	c.closeStale(j)
	r.Status, r.Reason = j.status, j.reason
	return r, nil
}

// startFill publishes f to its waiters and starts its copier, with the
// leader's reply following it.
func (c *Cache) startFill(r *Reply, f *fill, m *meta, objKey string, size int64, w storage.Writer, body io.ReadCloser) {
	if f.metaB == nil {
		f.metaB = m.encode(nil)
	}
	f.w, f.objKey, f.size = w, objKey, size
	f.bodyHere = bodyReady(body) // before the copier reads it
	f.progress = make(chan struct{})
	r.streamFill(m, f, r.j.origin) // attaches before the copier starts: cannot fail
	f.decide(outcomeStreaming, ReasonNone, nil)
	maxSize := r.j.pol.MaxObjectSize // r is the client's and may be gone when the copier runs
	f.segmentable = maxSize <= 0 && size < 0 && validatorOf(m.headers) != nil
	if size == 0 {
		c.copyBody(f, body, maxSize) // nothing to wait for: committed before the head goes out
		return
	}
	c.background(func() { c.copyBody(f, body, maxSize) })
}

// pass relays an origin response that is not stored; a registered fill
// releases its waiters to the origin and marks the key hit-for-pass.
func (c *Cache) pass(r *Reply, f *fill, resp *httphead.Response, body io.ReadCloser, age time.Duration, reason Reason) *Reply {
	j := &r.j
	c.stats.NotStored.Add(1)
	c.mu.Lock()
	registered := c.fills[f.key] == f
	c.mu.Unlock()
	if registered && marksHitForPass(reason, resp.Status) {
		c.setHitForPass(j.key, f.hfpTTL)
	}
	c.settle(f, outcomePass, reason, nil)
	if j.stale != nil && resp.Status < 500 {
		c.store.Delete(j.stale.key) // superseded by a response that may not be stored
	}
	c.closeStale(j)
	if j.tr != nil {
		j.tr.Add("cache-store", "not stored: "+reason.String())
	}
	r.relay(resp, body, age, cacheStatus{fwd: j.fwd, fwdStatus: resp.Status, detail: reason})
	if j.status == StatusExpired {
		j.status = StatusMiss
	}
	if j.reason == ReasonNone {
		j.reason = reason
	}
	r.Status, r.Reason = j.status, j.reason
	return r
}

// marksHitForPass reports whether a response that was not stored says
// something about the URL rather than about one request or a passing
// failure: an origin answering errors must stay protected by collapsing.
func marksHitForPass(reason Reason, status int) bool {
	switch reason {
	case ReasonNoStore, ReasonPrivate, ReasonVaryStar, ReasonSetCookie, ReasonNoFreshness, ReasonTooLarge:
		return true
	case ReasonStatus:
		return status < 500
	}
	return false
}

// revalidated refreshes a stored object from a 304 (RFC 9111 section
// 4.3.4) and serves it.
func (c *Cache) revalidated(r *Reply, f *fill, resp *httphead.Response, reqTime, respTime time.Time) (*Reply, error) {
	j := &r.j
	e := j.stale
	var h httphead.Header
	copyHeaders(&h, e.m.headers)
	copyHeaders(&h, e.m.edge)
	for i := 0; i < resp.Header.Len(); i++ {
		name, _ := resp.Header.Field(i)
		if !skipOn304(name) {
			h.Del(string(name))
		}
	}
	for i := 0; i < resp.Header.Len(); i++ {
		name, value := resp.Header.Field(i)
		if !skipOn304(name) {
			h.Add(name, value)
		}
	}
	d, targeted := responseDirectives(&h, j.pol)
	flags := objectFlags(&h, &d)
	ttl, src := lifetime(&h, &d, targeted, j.pol, respTime)
	m := meta{kind: e.m.kind, status: e.m.status, flags: flags, respTime: respTime.UnixNano(),
		initialAge: initialAge(&resp.Header, reqTime, respTime), lifetime: ttl, epoch: e.m.epoch}
	m.swr, m.sie = staleWindows(&d, flags, j.pol)
	m.headers, m.edge = storedHeaders(&h, &d, j.pol)
	m.tags = e.m.tags
	if tags := joinValues(&h, j.pol.surrogateKeyField(), ' '); tags != nil {
		m.tags = tags
	}
	metaB := m.encode(nil)
	if err := c.updateMeta(e.key, metaB, j.gen); err != nil {
		// Purged since the request left, or gone: the client still gets
		// what the origin confirmed, but the stored object stays as it is.
		c.log.Debug("cache revalidation not recorded", "key", e.key, "err", err)
	}
	c.settle(f, outcomeUpdated, ReasonNone, nil)
	c.stats.Revalidated.Add(1)
	if j.tr != nil {
		j.tr.Add("cache-ttl", strconv.FormatInt(int64(ttl/time.Second), 10)+"s from "+src)
	}
	if err := decodeMeta(metaB, &m); err != nil {
		return nil, err
	}
	now := c.now()
	age := m.age(now)
	r.setStoredHead(&m)
	r.serveObject(j.req, e.obj, &m)
	e.obj = nil
	r.addOwnFields(&resp.Header, &d, j.pol)
	traceSetCookie(j, &resp.Header)
	r.finishHead(age, cacheStatus{fwd: j.fwd, fwdStatus: 304, ttl: m.lifetime - age.Truncate(time.Second), hasTTL: true})
	r.Status, r.Reason = StatusRevalidated, j.reason
	return r, nil
}

// skipOn304 lists fields a 304 must not overwrite in the stored response.
func skipOn304(name []byte) bool {
	for _, f := range [...]string{"Content-Length", "Content-Range", "Transfer-Encoding", "Content-Encoding"} {
		if httphead.EqualFold(name, f) {
			return true
		}
	}
	return httphead.IsHopByHop(name)
}

// storedHeaders returns the header block to store for a response: without
// hop-by-hop and framing fields, Age (recomputed on every hit), the
// surrogate fields, and the withheld ones (private= and no-cache= fields,
// Set-Cookie unless the route stores it); and apart, the edge-targeted
// fields.
func storedHeaders(src *httphead.Header, d *cachecontrol.Directives, pol *Policy) (block, edge []byte) {
	var h httphead.Header
	h.CopyFrom(src)
	h.RemoveHopByHop()
	h.DelFunc(func(name, value []byte) bool {
		if isEdgeField(name, pol) {
			if !isSurrogateKey(name, pol) {
				edge = append(append(append(append(edge, name...), ": "...), value...), "\r\n"...)
			}
			return true
		}
		for _, f := range [...]string{"Age", "Content-Length", "Cache-Status"} {
			if httphead.EqualFold(name, f) {
				return true
			}
		}
		return withheld(name, d, pol)
	})
	return h.AppendTo(nil), edge
}

// joinValues joins every value of a field with sep, or returns nil.
func joinValues(h *httphead.Header, name string, sep byte) []byte {
	var out []byte
	h.Values(name, func(v []byte) bool {
		if v = httphead.TrimOWS(v); len(v) > 0 {
			if out != nil {
				out = append(out, sep)
			}
			out = append(out, v...)
		}
		return true
	})
	return out
}

// varyMarker makes sure the primary key holds a Vary marker for the field
// list vary, and returns its epoch and when it was last soft-purged. A
// marker for another list is replaced, which orphans its variants.
func (c *Cache) varyMarker(key string, vary []byte, now time.Time, gen uint64) (epoch uint64, purgedAt int64) {
	// Two fills of different variants must not both replace the marker, or
	// one of them is stored under an epoch no lookup will ever use.
	mu := &c.markerMu[maphash.String(c.keys.seed, key)%uint64(len(c.markerMu))]
	mu.Lock()
	defer mu.Unlock()
	if obj, err := c.store.Lookup(key); err == nil {
		var m meta
		ok := decodeMeta(obj.Meta(), &m) == nil && m.kind == kindVary && bytes.EqualFold(m.vary, vary)
		epoch, purgedAt := m.epoch, m.purgedAt
		obj.Close()
		if ok {
			return epoch, purgedAt
		}
	}
	m := meta{kind: kindVary, epoch: c.epoch.Add(1), vary: vary, respTime: now.UnixNano()}
	// A marker whose fill began before a purge is refused like its
	// variant: the variant stays under an epoch no lookup uses.
	w, err := c.create(key, m.encode(nil), 0, gen)
	if err == nil {
		if err = w.Commit(); err != nil {
			c.log.Debug("cache vary marker not stored", "key", key, "err", err)
		}
		if r, ok := w.(storage.Releaser); ok {
			r.Release()
		}
	}
	return m.epoch, 0
}

// maxHitForPass bounds the hit-for-pass marks held at once.
const maxHitForPass = 1 << 16

// setHitForPass sends the key's requests straight to the origin for ttl.
func (c *Cache) setHitForPass(key string, ttl time.Duration) {
	if ttl <= 0 {
		return
	}
	now := c.now().UnixNano()
	c.mu.Lock()
	if len(c.hfp) >= maxHitForPass {
		for k, until := range c.hfp {
			if until <= now {
				delete(c.hfp, k)
			}
		}
		if len(c.hfp) >= maxHitForPass { // a flood of uncacheable URLs: forget them all
			clear(c.hfp)
		}
	}
	c.hfp[key] = now + int64(ttl)
	c.mu.Unlock()
}

func (c *Cache) inHitForPass(key string, now time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	until, ok := c.hfp[key]
	if ok && until <= now.UnixNano() {
		delete(c.hfp, key)
		return false
	}
	return ok
}

func (c *Cache) clearHitForPass(key string) {
	c.mu.Lock()
	delete(c.hfp, key)
	c.mu.Unlock()
}

// invalidate removes the objects an unsafe request that succeeded has made
// stale: its target and the Location and Content-Location of the response
// on the same host (RFC 9111 section 4.4).
func (c *Cache) invalidate(req *httphead.Request, pol *Policy, resp *httphead.Response) {
	c.deleteKey(appendKey(nil, req, &pol.Key))
	for _, name := range [...]string{"Location", "Content-Location"} {
		target := sameHostTarget(resp.Header.Peek(name), req.Host)
		if target == nil {
			continue
		}
		u := httphead.Request{Paths: req.Paths}
		u.SetLine([]byte("GET"), target, req.Host, req.Scheme)
		u.Header.CopyFrom(&req.Header)
		c.deleteKey(appendKey(nil, &u, &pol.Key))
	}
}

func (c *Cache) deleteKey(key []byte) {
	c.remove(string(key))
}

// sameHostTarget returns the origin-form target of a URI reference when
// it points at host, or nil.
func sameHostTarget(ref, host []byte) []byte {
	ref = httphead.TrimOWS(ref)
	switch {
	case len(ref) == 0:
		return nil
	case ref[0] == '/' && !bytes.HasPrefix(ref, []byte("//")):
		return ref
	}
	i := bytes.Index(ref, []byte("://"))
	if i < 0 {
		return nil
	}
	rest := ref[i+3:]
	end := bytes.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if !bytes.EqualFold(rest[:end], host) {
		return nil
	}
	if end == len(rest) || rest[end] != '/' {
		return append([]byte("/"), rest[end:]...)
	}
	return rest[end:]
}
