package cache

import (
	"github.com/outpost-edge/outpost/cache/cachecontrol"
	"github.com/outpost-edge/outpost/httphead"
)

// SetCookieMode says what the cache does with a response that sets a
// cookie. A shared cache may store such a response (RFC 9111 section 3),
// but a cookie is one user's state (RFC 9111 section 7.3, RFC 6265
// section 8): served from the cache it would log every client in as the
// first one.
type SetCookieMode uint8

const (
	// SetCookiePass relays the response without storing it and marks the
	// key hit-for-pass, as Varnish's built-in VCL and Fastly do. The
	// default.
	SetCookiePass SetCookieMode = iota
	// SetCookieStrip stores the response without its Set-Cookie fields:
	// the client whose request filled the cache still gets them, hits
	// never do.
	SetCookieStrip
	// SetCookieStore stores the response as it is: every hit carries the
	// cookie. Only for cookies that are the same for everyone.
	SetCookieStore
)

// withheld reports whether a response field is kept out of the stored copy
// because it belongs to the user whose request fetched it: the fields
// private= and no-cache= name, and Set-Cookie unless the route stores it.
func withheld(name []byte, d *cachecontrol.Directives, pol *Policy) bool {
	return namedPrivate(name, d) || (pol.SetCookie != SetCookieStore && httphead.EqualFold(name, "Set-Cookie"))
}

// namedPrivate reports whether private= or no-cache= names the field: the
// response may be stored without it (RFC 9111 sections 5.2.2.4 and
// 5.2.2.7).
func namedPrivate(name []byte, d *cachecontrol.Directives) bool {
	return (d.Has(cachecontrol.PrivateFields) && httphead.ListHas(d.PrivateFields, b2s(name))) ||
		(d.Has(cachecontrol.NoCacheFields) && httphead.ListHas(d.NoCacheFields, b2s(name)))
}

// setCookieBlocks reports whether a response may not be stored because of
// its Set-Cookie fields: the route passes them, and the origin did not
// say the field alone is private (private="Set-Cookie" or
// no-cache="Set-Cookie" ask for the response to be stored without it).
func setCookieBlocks(h *httphead.Header, d *cachecontrol.Directives, pol *Policy) bool {
	return pol.SetCookie == SetCookiePass && h.Has("Set-Cookie") && !namedPrivate(setCookieField, d)
}

var setCookieField = []byte("Set-Cookie")

// addOwnFields gives the client whose request fetched a response the
// fields of it the stored copy leaves out for its sake: the withheld ones
// and the Cache-Status of the caches before this one, which describe this
// exchange and no later one.
func (r *Reply) addOwnFields(resp *httphead.Header, d *cachecontrol.Directives, pol *Policy) {
	for i := range resp.Len() {
		name, value := resp.Field(i)
		if withheld(name, d, pol) || httphead.EqualFold(name, "Cache-Status") {
			r.head.Header.Add(name, value)
		}
	}
}

// traceSetCookie records what became of a stored response's cookies.
func traceSetCookie(j *job, h *httphead.Header) {
	if j.tr == nil || !h.Has("Set-Cookie") {
		return
	}
	if j.pol.SetCookie == SetCookieStore {
		j.tr.Add("cache-set-cookie", "stored with the response")
	} else {
		j.tr.Add("cache-set-cookie", "kept out of the stored copy")
	}
}
