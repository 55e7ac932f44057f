package cache

import (
	"bytes"
	"time"

	"github.com/outpost-edge/outpost/cache/cachecontrol"
	"github.com/outpost-edge/outpost/httphead"
)

// This file holds the pure RFC 9111 rules: which directives govern a
// response, whether it may be stored, how long it stays fresh and how old
// it is. Every function takes the time it needs as an argument.

// responseDirectives returns the directives that govern a response at the
// edge: the first valid targeted field (RFC 9213 section 2.1), else
// Cache-Control. targeted reports which; a targeted field also displaces
// Expires.
func responseDirectives(h *httphead.Header, pol *Policy) (d cachecontrol.Directives, targeted bool) {
	for _, name := range [...]string{pol.targetedField(), "Surrogate-Control"} {
		if v := h.Peek(name); v != nil {
			var ok bool
			if name == "Surrogate-Control" {
				d, ok = cachecontrol.ParseSurrogate(v), len(httphead.TrimOWS(v)) > 0
			} else {
				d, ok = cachecontrol.ParseTargeted(v)
			}
			if ok { // valid and non-empty: it governs, whatever it holds
				return d, true
			}
		}
	}
	d.Reset()
	h.Values("Cache-Control", func(v []byte) bool {
		d.Add(v)
		return true
	})
	return d, false
}

// requestDirectives returns a request's directives; Pragma: no-cache counts
// as no-cache when Cache-Control is absent (RFC 9111 section 5.4).
func requestDirectives(h *httphead.Header) cachecontrol.Directives {
	var d cachecontrol.Directives
	d.Reset()
	found, pragma := false, false
	for i := range h.Len() {
		name, value := h.Field(i)
		switch {
		case httphead.EqualFold(name, "Cache-Control"):
			d.Add(value)
			found = true
		case httphead.EqualFold(name, "Pragma"):
			pragma = pragma || httphead.ListHas(value, "no-cache")
		}
	}
	if !found && pragma {
		d.Flags |= cachecontrol.NoCache
	}
	return d
}

// cacheableByDefault lists the statuses RFC 9110 section 15.1 makes
// heuristically cacheable (206 is left out: only complete bodies are stored).
func cacheableByDefault(status int) bool {
	switch status {
	case 200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501:
		return true
	}
	return false
}

// understood reports whether the cache implements the status's caching
// rules, for must-understand (RFC 9111 section 5.2.2.3).
func understood(status int) bool {
	return cacheableByDefault(status) || status == 302 || status == 307
}

// storable decides whether a response to a GET may be stored (RFC 9111
// section 3), returning ReasonNone or why not.
func storable(req *httphead.Request, rq *cachecontrol.Directives, resp *httphead.Response,
	d *cachecontrol.Directives, pol *Policy) Reason {
	status := resp.Status
	explicit := d.MaxAge != cachecontrol.Unset || d.SMaxAge != cachecontrol.Unset ||
		d.Has(cachecontrol.Public) || resp.Header.Has("Expires")
	switch {
	case len(resp.TransferCodings) > 0:
		return ReasonTransferCoded
	case d.Has(cachecontrol.MustUnderstand) && !understood(status):
		return ReasonStatus
	case d.Has(cachecontrol.NoStore) && !(d.Has(cachecontrol.MustUnderstand) && understood(status)):
		return ReasonNoStore
	case rq.Has(cachecontrol.NoStore):
		return ReasonRequestNoStore
	case d.Has(cachecontrol.Private) && !d.Has(cachecontrol.PrivateFields):
		return ReasonPrivate
	case status < 200 || status == 206 || status == 304 || (!cacheableByDefault(status) && !explicit):
		return ReasonStatus
	case req.Header.Has("Authorization") && !d.Has(cachecontrol.Public) &&
		d.SMaxAge == cachecontrol.Unset && !d.Has(cachecontrol.MustRevalidate):
		return ReasonAuthorization
	case resp.Header.HasToken("Vary", "*"):
		return ReasonVaryStar
	case setCookieBlocks(&resp.Header, d, pol):
		return ReasonSetCookie
	case pol.MaxObjectSize > 0 && resp.ContentLength > pol.MaxObjectSize:
		return ReasonTooLarge
	}
	return ReasonNone
}

// Where a freshness lifetime came from, for the trace.
const (
	srcOverride  = "override"
	srcSMaxAge   = "s-maxage"
	srcMaxAge    = "max-age"
	srcTargeted  = "targeted max-age"
	srcExpires   = "expires"
	srcHeuristic = "heuristic"
	srcDefault   = "default"
	srcNoCache   = "no-cache"
	srcNone      = "none"
)

// lifetime computes the freshness lifetime of a response (RFC 9111
// section 4.2.1), bounded by the policy, and names its source.
func lifetime(h *httphead.Header, d *cachecontrol.Directives, targeted bool, pol *Policy, respTime time.Time) (time.Duration, string) {
	if pol.OverrideTTL > 0 {
		return pol.OverrideTTL, srcOverride
	}
	ttl, src := originLifetime(h, d, targeted, pol, respTime)
	if src == srcNone {
		return pol.DefaultTTL, srcDefault
	}
	if pol.MinTTL > 0 && ttl < pol.MinTTL {
		ttl = pol.MinTTL
	}
	if pol.MaxTTL > 0 && ttl > pol.MaxTTL {
		ttl = pol.MaxTTL
	}
	return ttl, src
}

func originLifetime(h *httphead.Header, d *cachecontrol.Directives, targeted bool, pol *Policy, respTime time.Time) (time.Duration, string) {
	switch {
	case d.SMaxAge != cachecontrol.Unset:
		return seconds(d.SMaxAge), srcSMaxAge
	case d.MaxAge != cachecontrol.Unset && targeted:
		return seconds(d.MaxAge), srcTargeted
	case d.MaxAge != cachecontrol.Unset:
		return seconds(d.MaxAge), srcMaxAge
	}
	if exp := h.Peek("Expires"); exp != nil && !targeted {
		e, ok := parseDate(exp)
		if !ok || h.Count("Expires") > 1 {
			// An invalid Expires, or several (a singleton field sent
			// twice), means already expired (RFC 9111 section 5.3).
			return 0, srcExpires
		}
		date, ok := parseDate(h.Peek("Date"))
		if !ok {
			date = respTime
		}
		return max(e.Sub(date), 0), srcExpires
	}
	if pol.Heuristic {
		if lm, ok := parseDate(h.Peek("Last-Modified")); ok {
			date, ok := parseDate(h.Peek("Date"))
			if !ok {
				date = respTime
			}
			limit := pol.HeuristicMax
			if limit <= 0 {
				limit = 24 * time.Hour
			}
			return min(max(date.Sub(lm)/10, 0), limit), srcHeuristic
		}
	}
	return 0, srcNone
}

func seconds(n int64) time.Duration { return time.Duration(n) * time.Second }

// parseDate parses an HTTP-date strictly in one of the three forms of RFC
// 9110 section 5.6.7: IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT"), the
// obsolete RFC 850 form ("Sunday, 06-Nov-94 08:49:37 GMT") and asctime
// ("Sun Nov  6 08:49:37 1994"). Anything else (two spaces, a one-digit
// hour, a missing GMT) is not a date.
func parseDate(b []byte) (time.Time, bool) {
	for _, f := range dateForms {
		if len(b) >= f.min && len(b) <= f.max && fitsShape(b, f.shape) {
			t, err := time.Parse(f.layout, string(b))
			return t, err == nil
		}
	}
	return time.Time{}, false
}

// dateForms are the HTTP-date forms: a shape ('d' a digit, 'a' a letter,
// '*' the rest of a weekday name, anything else itself) and the layout
// that reads it.
var dateForms = [...]struct {
	shape, layout string
	min, max      int
}{
	{"aaa, dd aaa dddd dd:dd:dd GMT", "Mon, 02 Jan 2006 15:04:05 GMT", 29, 29},
	{"aaa*, dd-aaa-dd dd:dd:dd GMT", "Monday, 02-Jan-06 15:04:05 GMT", 30, 33},
	{"aaa aaa _d dd:dd:dd dddd", "Mon Jan _2 15:04:05 2006", 24, 24},
}

// fitsShape reports whether b has the shape of a date form.
func fitsShape(b []byte, shape string) bool {
	i := 0
	for j := 0; j < len(shape); j++ {
		if i >= len(b) {
			return false
		}
		switch c := shape[j]; c {
		case 'd':
			if b[i] < '0' || b[i] > '9' {
				return false
			}
		case '_': // a space-padded day: " 6"
			if b[i] != ' ' && (b[i] < '0' || b[i] > '9') {
				return false
			}
		case 'a':
			if b[i]|0x20 < 'a' || b[i]|0x20 > 'z' {
				return false
			}
		case '*':
			for i < len(b) && b[i]|0x20 >= 'a' && b[i]|0x20 <= 'z' {
				i++
			}
			continue
		default:
			if b[i] != c {
				return false
			}
		}
		i++
	}
	return i == len(b)
}

// initialAge is the corrected initial age of a response received at
// respTime for a request sent at reqTime (RFC 9111 section 4.2.3).
func initialAge(h *httphead.Header, reqTime, respTime time.Time) time.Duration {
	var apparent time.Duration
	if date, ok := parseDate(h.Peek("Date")); ok {
		apparent = max(respTime.Sub(date), 0)
	}
	var ageValue time.Duration
	if v := h.Peek("Age"); v != nil {
		ageValue = parseAge(v)
	}
	delay := max(respTime.Sub(reqTime), 0)
	return max(apparent, ageValue+delay)
}

// parseAge reads an Age value (RFC 9111 section 5.1): of a list
// ("7200, 0") the first member counts; a value that is not a non-negative
// integer makes the response as old as can be, so it is served stale,
// never fresh.
func parseAge(v []byte) time.Duration {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		v = v[:i]
	}
	v = httphead.TrimOWS(v)
	if len(v) == 0 {
		return seconds(cachecontrol.MaxDelta)
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return seconds(cachecontrol.MaxDelta)
		}
		n = min(n*10+int64(c-'0'), cachecontrol.MaxDelta)
	}
	return seconds(n)
}

// staleWindows returns the stale-while-revalidate and stale-if-error
// windows of a response (RFC 5861), falling back on the policy's defaults
// unless the response discourages serving stale (no-cache, s-maxage):
// then only the origin's own stale directives hold, as explicit
// permission. must-revalidate and proxy-revalidate forbid stale outright
// (RFC 9111 section 5.2.2.2), whatever the other directives say.
func staleWindows(d *cachecontrol.Directives, flags uint32, pol *Policy) (swr, sie time.Duration) {
	if flags&flagMustCheck != 0 {
		return 0, 0
	}
	if flags&(flagNoStale|flagAlwaysCheck) == 0 {
		swr, sie = pol.StaleWhileRevalidate, pol.StaleIfError
	}
	if d.StaleWhileRevalidate != cachecontrol.Unset {
		swr = seconds(d.StaleWhileRevalidate)
	}
	if d.StaleIfError != cachecontrol.Unset {
		sie = seconds(d.StaleIfError)
	}
	return swr, sie
}

// objectFlags returns the stored flags a response's directives imply.
func objectFlags(h *httphead.Header, d *cachecontrol.Directives) uint32 {
	var f uint32
	if d.Has(cachecontrol.MustRevalidate) || d.Has(cachecontrol.ProxyRevalidate) {
		f |= flagNoStale | flagMustCheck
	}
	if d.SMaxAge != cachecontrol.Unset { // implies proxy-revalidate, but CDNs pair it with stale-*
		f |= flagNoStale
	}
	if d.Has(cachecontrol.NoCache) && !d.Has(cachecontrol.NoCacheFields) {
		f |= flagAlwaysCheck
	}
	if d.Has(cachecontrol.Immutable) {
		f |= flagImmutable
	}
	if h.Has("ETag") || h.Has("Last-Modified") {
		f |= flagHasValidator
	}
	return f
}
