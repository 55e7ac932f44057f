package cache

import (
	"net/http"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// Tests named after the sections of RFC 9111 they check.

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// TestRFC9111Section4_2_1FreshnessLifetime checks where the lifetime comes
// from: each case stores a response, waits, and asks again.
func TestRFC9111Section4_2_1FreshnessLifetime(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		pol     Policy
		wait    time.Duration
		hit     bool
	}{
		{"max-age fresh", []string{"Cache-Control: max-age=60"}, Policy{}, 59 * time.Second, true},
		{"max-age stale", []string{"Cache-Control: max-age=60"}, Policy{}, 61 * time.Second, false},
		{"s-maxage beats max-age", []string{"Cache-Control: max-age=10, s-maxage=100"}, Policy{}, 50 * time.Second, true},
		{"s-maxage shorter than max-age", []string{"Cache-Control: max-age=100, s-maxage=10"}, Policy{}, 50 * time.Second, false},
		{"expires with date", []string{"Date: " + httpDate(epoch0), "Expires: " + httpDate(epoch0.Add(time.Hour))}, Policy{}, 59 * time.Minute, true},
		{"expires past", []string{"Date: " + httpDate(epoch0), "Expires: " + httpDate(epoch0.Add(time.Minute)), "ETag: \"x\""}, Policy{}, 2 * time.Minute, false},
		{"invalid expires is stale", []string{"Expires: 0", "ETag: \"x\""}, Policy{}, time.Second, false},
		{"max-age beats expires", []string{"Cache-Control: max-age=10", "Expires: " + httpDate(epoch0.Add(time.Hour))}, Policy{}, time.Minute, false},
		{"invalid max-age is stale", []string{"Cache-Control: max-age=ten", "ETag: \"x\""}, Policy{}, time.Second, false},
		{"absurd max-age saturates", []string{"Cache-Control: max-age=999999999999999999999"}, Policy{}, 24 * 365 * time.Hour, true},
		{"default ttl when none given", nil, Policy{DefaultTTL: time.Minute}, 30 * time.Second, true},
		{"default ttl does not apply to explicit", []string{"Cache-Control: max-age=5"}, Policy{DefaultTTL: time.Hour}, 30 * time.Second, false},
		{"min ttl floor", []string{"Cache-Control: max-age=5"}, Policy{MinTTL: time.Minute}, 30 * time.Second, true},
		{"max ttl cap", []string{"Cache-Control: max-age=3600"}, Policy{MaxTTL: time.Minute}, 2 * time.Minute, false},
		{"override ttl", []string{"Cache-Control: max-age=5"}, Policy{OverrideTTL: time.Hour}, time.Minute, true},
		{"heuristic off by default", []string{"Date: " + httpDate(epoch0), "Last-Modified: " + httpDate(epoch0.Add(-100*time.Hour))}, Policy{}, time.Minute, false},
		{"heuristic ten percent", []string{"Date: " + httpDate(epoch0), "Last-Modified: " + httpDate(epoch0.Add(-100*time.Hour))}, Policy{Heuristic: true}, 9 * time.Hour, true},
		{"heuristic capped", []string{"Date: " + httpDate(epoch0), "Last-Modified: " + httpDate(epoch0.Add(-1000*time.Hour))}, Policy{Heuristic: true, HeuristicMax: time.Hour}, 2 * time.Hour, false},
		{"targeted field beats cache-control", []string{"Cache-Control: max-age=5", "CDN-Cache-Control: max-age=600"}, Policy{}, time.Minute, true},
		{"targeted field ignores expires", []string{"CDN-Cache-Control: max-age=5", "Expires: " + httpDate(epoch0.Add(time.Hour))}, Policy{}, time.Minute, false},
		{"broken targeted field falls back", []string{"Cache-Control: max-age=600", `CDN-Cache-Control: max-age=5, private="x`}, Policy{}, time.Minute, true},
		{"targeted field governs even without freshness", []string{"Cache-Control: max-age=600", "CDN-Cache-Control: no-transform", "ETag: \"x\""}, Policy{}, time.Second, false},
		{"empty targeted field is ignored", []string{"Cache-Control: max-age=600", "CDN-Cache-Control:  "}, Policy{}, time.Minute, true},
		{"surrogate-control beats cache-control", []string{"Cache-Control: no-store", "Surrogate-Control: max-age=600"}, Policy{}, time.Minute, true},
		{"custom targeted field", []string{"Cache-Control: max-age=5", "Outpost-Cache-Control: max-age=600"}, Policy{TargetedField: "Outpost-Cache-Control"}, time.Minute, true},
		{"no-cache always revalidates", []string{"Cache-Control: max-age=600, no-cache", "ETag: \"x\""}, Policy{}, time.Second, false},
		{"immutable", []string{"Cache-Control: max-age=600, immutable"}, Policy{}, time.Minute, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			pol := tt.pol
			pol.Enabled = true
			e.pol = &pol
			o := fixed(answer{headers: tt.headers, body: "body"})
			e.get(o, "/f")
			e.clock.Advance(tt.wait)
			r := e.get(o, "/f")
			if hit := r.code == StatusHit; hit != tt.hit {
				t.Errorf("hit = %v (%v, %q), want %v", hit, r.code, r.get("Cache-Status"), tt.hit)
			}
			if r.body != "body" {
				t.Errorf("body = %q", r.body)
			}
		})
	}
}

// TestRFC9111Section3StoringResponses checks what may be stored.
func TestRFC9111Section3StoringResponses(t *testing.T) {
	tests := []struct {
		name    string
		reqHdrs []string
		status  int
		headers []string
		stored  bool
		reason  Reason
	}{
		{"plain max-age", nil, 200, []string{"Cache-Control: max-age=60"}, true, ReasonNone},
		{"no-store", nil, 200, []string{"Cache-Control: max-age=60, no-store"}, false, ReasonNoStore},
		{"request no-store", []string{"Cache-Control: no-store"}, 200, []string{"Cache-Control: max-age=60"}, false, ReasonRequestNoStore},
		{"private", nil, 200, []string{"Cache-Control: private, max-age=60"}, false, ReasonPrivate},
		{"private with field names is stored", nil, 200, []string{`Cache-Control: private="X-User", max-age=60`, "X-User: alice"}, true, ReasonNone},
		{"authorization", []string{"Authorization: Bearer x"}, 200, []string{"Cache-Control: max-age=60"}, false, ReasonAuthorization},
		{"authorization with public", []string{"Authorization: Bearer x"}, 200, []string{"Cache-Control: public, max-age=60"}, true, ReasonNone},
		{"authorization with s-maxage", []string{"Authorization: Bearer x"}, 200, []string{"Cache-Control: s-maxage=60"}, true, ReasonNone},
		{"authorization with must-revalidate", []string{"Authorization: Bearer x"}, 200, []string{"Cache-Control: max-age=60, must-revalidate"}, true, ReasonNone},
		{"404 is cacheable by default", nil, 404, []string{"Cache-Control: max-age=60"}, true, ReasonNone},
		{"500 with explicit freshness", nil, 500, []string{"Cache-Control: max-age=60"}, true, ReasonNone},
		{"500 without", nil, 500, []string{"ETag: \"x\""}, false, ReasonStatus},
		{"302 without explicit freshness", nil, 302, []string{"Location: /x", "Last-Modified: " + httpDate(epoch0)}, false, ReasonStatus},
		{"302 with max-age", nil, 302, []string{"Location: /x", "Cache-Control: max-age=60"}, true, ReasonNone},
		{"206 never", nil, 206, []string{"Cache-Control: max-age=60"}, false, ReasonStatus},
		{"vary star", nil, 200, []string{"Cache-Control: max-age=60", "Vary: *"}, false, ReasonVaryStar},
		{"set-cookie", nil, 200, []string{"Cache-Control: max-age=60", "Set-Cookie: a=b"}, false, ReasonSetCookie},
		{"must-understand overrides no-store", nil, 200, []string{"Cache-Control: max-age=60, no-store, must-understand"}, true, ReasonNone},
		{"must-understand with unknown status", nil, 299, []string{"Cache-Control: max-age=60, must-understand"}, false, ReasonStatus},
		{"no freshness no validator", nil, 200, nil, false, ReasonNoFreshness},
		{"validator only", nil, 200, []string{"ETag: \"v\""}, true, ReasonNone},
		{"no-cache without validator", nil, 200, []string{"Cache-Control: max-age=60, no-cache"}, false, ReasonNoFreshness},
		{"no-cache with validator", nil, 200, []string{"Cache-Control: max-age=60, no-cache", "ETag: \"v\""}, true, ReasonNone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(answer{status: tt.status, headers: tt.headers, body: "b"})
			r := e.get(o, "/s", tt.reqHdrs...)
			if r.reason != tt.reason {
				t.Errorf("reason = %v, want %v", r.reason, tt.reason)
			}
			if stored := e.isStored("/s", tt.reqHdrs...); stored != tt.stored {
				t.Errorf("stored = %v, want %v (%q)", stored, tt.stored, r.get("Cache-Status"))
			}
			if r.status != tt.status || r.body != "b" {
				t.Errorf("status = %d, body %q", r.status, r.body)
			}
		})
	}
}

func TestRFC9111Section3PrivateFieldsAreNotStored(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{`Cache-Control: max-age=60, private="X-User", no-cache="X-Token"`,
		"X-User: alice", "X-Token: t", "X-Other: o"}, body: "b"})
	e.get(o, "/p")
	r := e.get(o, "/p")
	if r.code != StatusHit || r.get("X-User") != "" || r.get("X-Token") != "" || r.get("X-Other") != "o" {
		t.Fatalf("hit %v, X-User %q X-Token %q X-Other %q", r.code, r.get("X-User"), r.get("X-Token"), r.get("X-Other"))
	}
}

// TestRFC9111Section4_2_3Age checks the Age calculation.
func TestRFC9111Section4_2_3Age(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=600", "Age: 100", "Date: " + httpDate(epoch0.Add(-30*time.Second))}, body: "b"})
	r := e.get(o, "/age")
	if got := r.get("Age"); got != "100" {
		t.Errorf("miss Age = %q, want 100", got)
	}
	e.clock.Advance(20 * time.Second)
	r = e.get(o, "/age")
	if got := r.get("Age"); got != "120" {
		t.Errorf("hit Age = %q, want 120", got)
	}
	if got := r.get("Cache-Status"); got != "Outpost; hit; ttl=480" {
		t.Errorf("Cache-Status = %q", got)
	}
	// apparent age wins when larger than Age
	e2 := newEnv(t)
	o2 := fixed(answer{headers: []string{"Cache-Control: max-age=600", "Date: " + httpDate(epoch0.Add(-50*time.Second))}, body: "b"})
	if got := e2.get(o2, "/age").get("Age"); got != "50" {
		t.Errorf("apparent Age = %q, want 50", got)
	}
}

// TestRFC9111Section4_3Validation checks revalidation of stale objects.
func TestRFC9111Section4_3Validation(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			return answer{headers: []string{"Cache-Control: max-age=10", "ETag: \"v1\"", "X-Version: 1", "Content-Type: text/plain"}, body: "payload"}
		}
		if req.Header.Get("If-None-Match") != `"v1"` {
			t.Errorf("revalidation without If-None-Match: %q", req.Header.Get("If-None-Match"))
		}
		return answer{status: 304, headers: []string{"Cache-Control: max-age=100", "ETag: \"v1\"", "X-Version: 2"}}
	})
	e.get(o, "/v")
	e.clock.Advance(11 * time.Second)
	r := e.get(o, "/v")
	if r.code != StatusRevalidated || r.status != 200 || r.body != "payload" {
		t.Fatalf("revalidation: %v %d %q", r.code, r.status, r.body)
	}
	if r.get("X-Version") != "2" || r.get("Content-Type") != "text/plain" {
		t.Errorf("304 did not update headers: X-Version %q Content-Type %q", r.get("X-Version"), r.get("Content-Type"))
	}
	if got := r.get("Cache-Status"); got != "Outpost; fwd=stale; fwd-status=304; ttl=100" {
		t.Errorf("Cache-Status = %q", got)
	}
	e.clock.Advance(50 * time.Second)
	r = e.get(o, "/v")
	if r.code != StatusHit || r.get("X-Version") != "2" {
		t.Fatalf("after 304: %v X-Version %q", r.code, r.get("X-Version"))
	}
	if o.count.Load() != 2 {
		t.Errorf("origin saw %d requests, want 2", o.count.Load())
	}
}

func TestRFC9111Section4_3ValidationWithLastModified(t *testing.T) {
	e := newEnv(t)
	lm := httpDate(epoch0.Add(-time.Hour))
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			return answer{headers: []string{"Cache-Control: max-age=10", "Last-Modified: " + lm}, body: "x"}
		}
		if req.Header.Get("If-Modified-Since") != lm {
			return answer{headers: []string{"Cache-Control: max-age=10"}, body: "new"}
		}
		return answer{status: 304}
	})
	e.get(o, "/lm")
	e.clock.Advance(time.Minute)
	if r := e.get(o, "/lm"); r.code != StatusRevalidated || r.body != "x" {
		t.Fatalf("got %v %q", r.code, r.body)
	}
}

func TestRFC9111Section4_3ChangedResponseReplacesStale(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=10", "ETag: \"v" + string(rune('0'+n)) + "\""}, body: "version" + string(rune('0'+n))}
	})
	e.get(o, "/c")
	e.clock.Advance(time.Minute)
	r := e.get(o, "/c")
	if r.code != StatusExpired || r.body != "version2" {
		t.Fatalf("got %v %q", r.code, r.body)
	}
	if got := r.get("Cache-Status"); got != "Outpost; fwd=stale; fwd-status=200; ttl=10" {
		t.Errorf("Cache-Status = %q", got)
	}
	if r := e.get(o, "/c"); r.code != StatusHit || r.body != "version2" {
		t.Fatalf("got %v %q", r.code, r.body)
	}
}

// TestRFC9111Section5_2_1RequestDirectives checks the request directives a
// shared cache honours.
func TestRFC9111Section5_2_1RequestDirectives(t *testing.T) {
	tests := []struct {
		name    string
		wait    time.Duration
		reqHdrs []string
		code    Status
		status  int
	}{
		{"no-cache revalidates", 0, []string{"Cache-Control: no-cache"}, StatusRevalidated, 200},
		{"pragma no-cache", 0, []string{"Pragma: no-cache"}, StatusRevalidated, 200},
		{"pragma ignored with cache-control", 0, []string{"Pragma: no-cache", "Cache-Control: max-stale"}, StatusHit, 200},
		{"max-age older than allowed", 30 * time.Second, []string{"Cache-Control: max-age=10"}, StatusRevalidated, 200},
		{"max-age within", 5 * time.Second, []string{"Cache-Control: max-age=10"}, StatusHit, 200},
		{"min-fresh not met", 50 * time.Second, []string{"Cache-Control: min-fresh=20"}, StatusRevalidated, 200},
		{"min-fresh met", 10 * time.Second, []string{"Cache-Control: min-fresh=20"}, StatusHit, 200},
		{"max-stale any", 2 * time.Minute, []string{"Cache-Control: max-stale"}, StatusStale, 200},
		{"max-stale within", 70 * time.Second, []string{"Cache-Control: max-stale=30"}, StatusStale, 200},
		{"max-stale exceeded", 2 * time.Minute, []string{"Cache-Control: max-stale=30"}, StatusRevalidated, 200},
		{"only-if-cached fresh", 0, []string{"Cache-Control: only-if-cached"}, StatusHit, 200},
		{"only-if-cached stale", 2 * time.Minute, []string{"Cache-Control: only-if-cached"}, StatusGatewayTimeout, 504},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			o := newOrigin(func(req *httphead.Request, n int) answer {
				if n > 1 && req.Header.Has("If-None-Match") {
					return answer{status: 304, headers: []string{"Cache-Control: max-age=60"}}
				}
				return answer{headers: []string{"Cache-Control: max-age=60", "ETag: \"e\""}, body: "b"}
			})
			e.get(o, "/r")
			e.clock.Advance(tt.wait)
			r := e.get(o, "/r", tt.reqHdrs...)
			if r.code != tt.code || r.status != tt.status {
				t.Errorf("got %v %d (%q), want %v %d", r.code, r.status, r.get("Cache-Status"), tt.code, tt.status)
			}
		})
	}
}

func TestRFC9111Section5_2_1_7OnlyIfCachedMiss(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: "b"})
	r := e.get(o, "/none", "Cache-Control: only-if-cached")
	if r.status != 504 || o.count.Load() != 0 {
		t.Fatalf("got %d, origin %d", r.status, o.count.Load())
	}
}

func TestRFC9111Section5_2_2_2MustRevalidateForbidsStale(t *testing.T) {
	e := newEnv(t)
	e.pol.StaleIfError = time.Hour
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			return answer{headers: []string{"Cache-Control: max-age=10, must-revalidate"}, body: "b"}
		}
		return answer{err: errOriginDown}
	})
	e.get(o, "/mr")
	e.clock.Advance(time.Minute)
	if r := e.get(o, "/mr", "Cache-Control: max-stale"); r.status != -1 {
		t.Fatalf("stale served despite must-revalidate: %v %q", r.code, r.get("Cache-Status"))
	}
}

// TestRFC9111Section4_4Invalidation checks that unsafe methods invalidate.
func TestRFC9111Section4_4Invalidation(t *testing.T) {
	e := newEnv(t)
	get := fixed(answer{headers: []string{"Cache-Control: max-age=600"}, body: "b"})
	for _, p := range []string{"/item", "/loc", "/cloc", "/other"} {
		e.get(get, p)
	}
	post := fixed(answer{status: 201, headers: []string{"Location: https://example.com/loc", "Content-Location: /cloc"}})
	r := e.do(post, "POST", "/item")
	if r.code != StatusPass || r.reason != ReasonUnsafe {
		t.Errorf("POST: %v %v", r.code, r.reason)
	}
	for _, p := range []string{"/item", "/loc", "/cloc"} {
		if r := e.get(get, p); r.code == StatusHit {
			t.Errorf("%s still cached after POST", p)
		}
	}
	if r := e.get(get, "/other"); r.code != StatusHit {
		t.Errorf("/other invalidated")
	}
	// a failed unsafe request invalidates nothing; another host is left alone
	e.do(fixed(answer{status: 500}), "DELETE", "/other")
	e.do(fixed(answer{status: 200, headers: []string{"Location: https://elsewhere.com/other"}}), "PUT", "/x")
	if r := e.get(get, "/other"); r.code != StatusHit {
		t.Errorf("/other invalidated by a failed DELETE or another host's Location")
	}
}

func TestSameHostTarget(t *testing.T) {
	tests := []struct{ ref, want string }{
		{"/a?b", "/a?b"},
		{"https://example.com/x", "/x"},
		{"http://EXAMPLE.com", "/"},
		{"https://example.com?q", "/?q"},
		{"https://evil.com/x", ""},
		{"//example.com/x", ""},
		{"relative", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := string(sameHostTarget([]byte(tt.ref), []byte("example.com"))); got != tt.want {
			t.Errorf("sameHostTarget(%q) = %q, want %q", tt.ref, got, tt.want)
		}
	}
}
