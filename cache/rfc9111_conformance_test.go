package cache

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// isStored reports whether the cache holds an object for a GET of target
// with the given request fields (following Vary), whatever its freshness.
func (e *env) isStored(target string, headers ...string) bool {
	e.t.Helper()
	e.waitFills()
	req := request("GET", target, headers...)
	r := e.c.newReply()
	defer r.Close()
	r.j.pol = e.pol
	var en entry
	found, _ := e.c.lookup(r, e.c.keys.intern(appendKey(nil, req, &e.pol.Key)), req, &en)
	if found {
		en.obj.Close()
	}
	return found
}

// The RFC 9111 conformance table, over the harness of harness_test.go
// (rfc9111_test.go holds the tests of single sections and of the policy's
// knobs): one test origin per row, each exercising
// one directive (RFC 9111 section 5.2, RFC 5861, and the fields of
// sections 5.1 and 5.3) the way the RFC text states it. A row sends a
// first request, which the origin answers with resp (body "v1"), then a
// second request after wait; the origin answers any later request with a
// 304 when it carries a validator of a stored response, else with resp
// again (body "v2"), unless the row makes it fail. Each row says whether
// the first response is stored and what the cache decides for the second
// request.

// decision is what the cache does with the second request.
type decision uint8

const (
	serve      decision = iota + 1 // from the cache, without the origin
	serveStale                     // from the cache, stale
	revalidate                     // a conditional request to the origin, then the stored response
	refetch                        // a new full response from the origin replaces the stored one
	forward                        // from the origin: nothing usable was stored
	failed                         // the origin's failure reaches the client; nothing stale is served
	timeout504                     // 504 without asking the origin (only-if-cached)
)

var decisionNames = map[decision]string{serve: "serve", serveStale: "serve stale", revalidate: "revalidate",
	refetch: "refetch", forward: "forward", failed: "failed", timeout504: "504"}

// originThen is how the origin answers after its first response.
type originThen uint8

const (
	thenNormal originThen = iota // 304 to a conditional request, else a full response
	thenDown                     // unreachable
	then500                      // 500 Internal Server Error
)

type conformanceRow struct {
	sec    string // where the RFC says it
	name   string
	status int      // the first response's status; 0 means 200
	resp   []string // the origin's response fields
	then   originThen
	pol    Policy
	req1   []string // fields of the first request
	stored bool
	wait   time.Duration
	req2   []string // fields of the second request
	want   decision
	check  func(t *testing.T, first, second result) // more, where a row needs it
}

var (
	tDate = "Date: " + httpDate(epoch0)
	etag  = `ETag: "v"`
)

var conformanceRows = []conformanceRow{
	// Response directives, RFC 9111 section 5.2.2.
	{sec: "9111 5.2.2.1", name: "max-age: fresh, served", resp: []string{"Cache-Control: max-age=60"},
		stored: true, wait: 30 * time.Second, want: serve},
	{sec: "9111 5.2.2.1, 4.3.1", name: "max-age: stale, revalidated", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 61 * time.Second, want: revalidate},
	{sec: "9111 5.2.2.1, 4", name: "max-age: stale without validator, fetched anew", resp: []string{"Cache-Control: max-age=60"},
		stored: true, wait: 61 * time.Second, want: refetch},
	{sec: "9111 5.2.2.1", name: "max-age=0 with a validator: stored, revalidated on every use", resp: []string{"Cache-Control: max-age=0", etag},
		stored: true, want: revalidate},
	{sec: "9111 5.2.2.10", name: "s-maxage overrides max-age", resp: []string{"Cache-Control: max-age=10, s-maxage=100"},
		stored: true, wait: 50 * time.Second, want: serve},
	{sec: "9111 5.2.2.10", name: "s-maxage overrides a longer max-age", resp: []string{"Cache-Control: max-age=100, s-maxage=10", etag},
		stored: true, wait: 50 * time.Second, want: revalidate},
	{sec: "9111 5.2.2.10, 5.3", name: "s-maxage overrides Expires", resp: []string{"Cache-Control: s-maxage=100", tDate, "Expires: " + httpDate(epoch0.Add(10*time.Second))},
		stored: true, wait: 50 * time.Second, want: serve},
	{sec: "9111 5.2.2.10", name: "s-maxage implies proxy-revalidate: max-stale is not honoured", resp: []string{"Cache-Control: s-maxage=10", etag},
		stored: true, wait: time.Minute, req2: []string{"Cache-Control: max-stale=3600"}, want: revalidate},
	{sec: "9111 5.2.2.5", name: "no-store: not stored", resp: []string{"Cache-Control: max-age=60, no-store"},
		stored: false, want: forward},
	{sec: "9111 5.2.2.3", name: "must-understand with an understood status overrides no-store", resp: []string{"Cache-Control: max-age=60, no-store, must-understand"},
		stored: true, want: serve},
	{sec: "9111 5.2.2.3", name: "must-understand with a status not understood: not stored", status: 299, resp: []string{"Cache-Control: max-age=60, no-store, must-understand"},
		stored: false, want: forward},
	{sec: "9111 5.2.2.4", name: "no-cache: stored, revalidated before every use", resp: []string{"Cache-Control: max-age=60, no-cache", etag},
		stored: true, want: revalidate},
	// The RFC allows storing it; without a validator every use would be a
	// full fetch, so Outpost does not.
	{sec: "9111 5.2.2.4", name: "no-cache without a validator: never served from the cache", resp: []string{"Cache-Control: max-age=60, no-cache"},
		stored: false, want: forward},
	{sec: "9111 5.2.2.4", name: `no-cache="field": stored, the field only on the response that brought it`, resp: []string{`Cache-Control: max-age=60, no-cache="X-Token"`, "X-Token: t"},
		stored: true, want: serve, check: fieldOnFirstOnly("X-Token", "t")},
	{sec: "9111 5.2.2.4", name: "no-cache: revalidated even when the request accepts stale", resp: []string{"Cache-Control: max-age=60, no-cache", etag},
		stored: true, wait: time.Minute, req2: []string{"Cache-Control: max-stale"}, want: revalidate},
	{sec: "9111 5.2.2.7", name: "private: not stored", resp: []string{"Cache-Control: max-age=60, private"},
		stored: false, want: forward},
	{sec: "9111 5.2.2.7", name: `private="field": stored without the field`, resp: []string{`Cache-Control: max-age=60, private="X-User"`, "X-User: alice"},
		stored: true, want: serve, check: fieldOnFirstOnly("X-User", "alice")},
	{sec: "9111 5.2.2.9, 3.5", name: "public: stored for a request with Authorization", resp: []string{"Cache-Control: max-age=60, public"},
		req1: []string{"Authorization: Bearer a"}, stored: true, req2: []string{"Authorization: Bearer a"}, want: serve},
	{sec: "9111 3.5", name: "Authorization without public, s-maxage or must-revalidate: not stored", resp: []string{"Cache-Control: max-age=60"},
		req1: []string{"Authorization: Bearer a"}, stored: false, want: forward},
	{sec: "9111 3.5, 5.2.2.8", name: "proxy-revalidate does not allow storing with Authorization", resp: []string{"Cache-Control: max-age=60, proxy-revalidate"},
		req1: []string{"Authorization: Bearer a"}, stored: false, want: forward},
	{sec: "9111 5.2.2.9, 3", name: "public makes a status that is not heuristically cacheable storable", status: 302, resp: []string{"Cache-Control: public", "Location: /x", etag},
		stored: true, want: revalidate},
	{sec: "9111 5.2.2.2", name: "must-revalidate: stale, the origin down, an error and not the stale response", resp: []string{"Cache-Control: max-age=10, must-revalidate, stale-if-error=3600"},
		then: thenDown, pol: Policy{StaleIfError: time.Hour}, stored: true, wait: time.Minute, req2: []string{"Cache-Control: max-stale"}, want: failed},
	{sec: "9111 5.2.2.2, 4.2.4", name: "must-revalidate: stale, the origin failing, its error and not the stale response", resp: []string{"Cache-Control: max-age=10, must-revalidate"},
		then: then500, pol: Policy{StaleIfError: time.Hour}, stored: true, wait: time.Minute, want: failed},
	{sec: "9111 5.2.2.8, 4.2.4", name: "proxy-revalidate: no stale response when the origin is down", resp: []string{"Cache-Control: max-age=10, proxy-revalidate"},
		then: thenDown, pol: Policy{StaleIfError: time.Hour}, stored: true, wait: time.Minute, want: failed},
	{sec: "9111 5.2.2.10, 4.2.4", name: "s-maxage: the route's default stale-if-error does not apply", resp: []string{"Cache-Control: s-maxage=10"},
		then: thenDown, pol: Policy{StaleIfError: time.Hour}, stored: true, wait: time.Minute, want: failed},
	// A reading, not the letter: s-maxage implies proxy-revalidate, yet an
	// origin that sends stale-if-error beside it (a common CDN idiom) gives
	// explicit permission for this response (RFC 5861 section 4), which
	// Outpost follows (README, "Caching").
	{sec: "5861 4, 9111 5.2.2.10", name: "s-maxage with the origin's own stale-if-error: the stale response", resp: []string{"Cache-Control: s-maxage=10, stale-if-error=300"},
		then: thenDown, stored: true, wait: time.Minute, want: serveStale},
	{sec: "9111 5.2.2.2, 3.5", name: "must-revalidate allows storing with Authorization", resp: []string{"Cache-Control: max-age=60, must-revalidate"},
		req1: []string{"Authorization: Bearer a"}, stored: true, req2: []string{"Authorization: Bearer a"}, want: serve},
	{sec: "9111 5.2.2.8", name: "proxy-revalidate: a shared cache revalidates a stale response whatever the request accepts", resp: []string{"Cache-Control: max-age=10, proxy-revalidate", etag},
		stored: true, wait: time.Minute, req2: []string{"Cache-Control: max-stale"}, want: revalidate},
	{sec: "9111 5.2.2.6", name: "no-transform: content and its fields relayed as they are", resp: []string{"Cache-Control: max-age=60, no-transform", "Content-Type: image/webp", "Content-Encoding: gzip"},
		stored: true, want: serve, check: func(t *testing.T, first, second result) {
			for _, r := range []result{first, second} {
				if r.get("Content-Type") != "image/webp" || r.get("Content-Encoding") != "gzip" || r.get("Cache-Control") != "max-age=60, no-transform" {
					t.Errorf("fields changed: %q %q %q", r.get("Content-Type"), r.get("Content-Encoding"), r.get("Cache-Control"))
				}
			}
		}},

	// RFC 5861.
	{sec: "5861 3", name: "stale-while-revalidate: stale within the window, served while refreshed", resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=30"},
		stored: true, wait: 70 * time.Second, want: serveStale},
	{sec: "5861 3", name: "stale-while-revalidate: past the window, fetched first", resp: []string{"Cache-Control: max-age=60, stale-while-revalidate=30", etag},
		stored: true, wait: 100 * time.Second, want: revalidate},
	{sec: "5861 4", name: "stale-if-error: a 500 within the window, the stale response", resp: []string{"Cache-Control: max-age=60, stale-if-error=300"},
		then: then500, stored: true, wait: 2 * time.Minute, want: serveStale},
	{sec: "5861 4", name: "stale-if-error: the origin down within the window, the stale response", resp: []string{"Cache-Control: max-age=60, stale-if-error=300"},
		then: thenDown, stored: true, wait: 2 * time.Minute, want: serveStale},
	{sec: "5861 4", name: "stale-if-error: past the window, the error", resp: []string{"Cache-Control: max-age=60, stale-if-error=30"},
		then: then500, stored: true, wait: 2 * time.Minute, want: failed},

	// Expires, RFC 9111 section 5.3.
	{sec: "9111 5.3, 4.2.1", name: "Expires: fresh until Expires - Date", resp: []string{tDate, "Expires: " + httpDate(epoch0.Add(time.Hour))},
		stored: true, wait: 59 * time.Minute, want: serve},
	{sec: "9111 5.3", name: "Expires in the past: stale at once", resp: []string{tDate, "Expires: " + httpDate(epoch0.Add(-time.Hour)), etag},
		stored: true, want: revalidate},
	{sec: "9111 5.3", name: `an invalid Expires ("0") means already expired`, resp: []string{"Expires: 0", etag},
		stored: true, want: revalidate},
	{sec: "9111 5.3, 9110 5.6.7", name: "an Expires that is not an HTTP-date to the letter is invalid", resp: []string{tDate, "Expires: Sun, 06 Nov 2044 8:49:37 GMT", etag},
		stored: true, want: revalidate},
	{sec: "9111 5.3, 4.2", name: "two Expires lines are invalid: expired", resp: []string{tDate, "Expires: " + httpDate(epoch0.Add(time.Hour)), "Expires: " + httpDate(epoch0.Add(time.Hour)), etag},
		stored: true, want: revalidate},
	{sec: "9111 5.3", name: "max-age overrides Expires", resp: []string{"Cache-Control: max-age=10", tDate, "Expires: " + httpDate(epoch0.Add(time.Hour)), etag},
		stored: true, wait: time.Minute, want: revalidate},

	// Heuristic freshness, RFC 9111 section 4.2.2.
	{sec: "9111 4.2.2", name: "heuristic: a tenth of the time since Last-Modified", resp: []string{tDate, "Last-Modified: " + httpDate(epoch0.Add(-100*time.Hour))},
		pol: Policy{Heuristic: true}, stored: true, wait: 9 * time.Hour, want: serve},
	{sec: "9111 4.2.2", name: "heuristic: past a tenth, revalidated with If-Modified-Since", resp: []string{tDate, "Last-Modified: " + httpDate(epoch0.Add(-100*time.Hour))},
		pol: Policy{Heuristic: true}, stored: true, wait: 11 * time.Hour, want: revalidate},
	{sec: "9111 4.2.2", name: "heuristic off (the default): Last-Modified only validates", resp: []string{tDate, "Last-Modified: " + httpDate(epoch0.Add(-100*time.Hour))},
		stored: true, want: revalidate},
	{sec: "9111 4.2.2, 3", name: "no heuristic for a status that is not heuristically cacheable", status: 302, resp: []string{"Location: /x", tDate, "Last-Modified: " + httpDate(epoch0.Add(-100*time.Hour))},
		pol: Policy{Heuristic: true}, stored: false, want: forward},

	// Age, RFC 9111 sections 5.1 and 4.2.3.
	{sec: "9111 5.1, 4.2.3", name: "Age counts against max-age", resp: []string{"Cache-Control: max-age=60", "Age: 50", etag},
		stored: true, wait: 20 * time.Second, want: revalidate},
	{sec: "9111 5.1, 4.2.3", name: "Age added on every use", resp: []string{"Cache-Control: max-age=60", "Age: 30"},
		stored: true, wait: 20 * time.Second, want: serve, check: func(t *testing.T, first, second result) {
			if first.get("Age") != "30" || second.get("Age") != "50" {
				t.Errorf("Age %q then %q, want 30 then 50", first.get("Age"), second.get("Age"))
			}
		}},
	{sec: "9111 5.1", name: "Age as a list: the first member counts", resp: []string{"Cache-Control: max-age=3600", "Age: 7200, 0", etag},
		stored: true, want: revalidate},
	{sec: "9111 5.1", name: "an invalid Age makes the response stale, not fresh", resp: []string{"Cache-Control: max-age=3600", "Age: soon", etag},
		stored: true, want: revalidate},

	// Request directives, RFC 9111 section 5.2.1.
	{sec: "9111 5.2.1.1", name: "request max-age: older than allowed, revalidated", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 30 * time.Second, req2: []string{"Cache-Control: max-age=10"}, want: revalidate},
	{sec: "9111 5.2.1.1", name: "request max-age: young enough, served", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 30 * time.Second, req2: []string{"Cache-Control: max-age=40"}, want: serve},
	{sec: "9111 5.2.1.1", name: "request max-age=0: revalidated", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: time.Second, req2: []string{"Cache-Control: max-age=0"}, want: revalidate},
	{sec: "9111 5.2.1.2", name: "max-stale=N: stale by less, served stale", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 70 * time.Second, req2: []string{"Cache-Control: max-stale=30"}, want: serveStale},
	{sec: "9111 5.2.1.2", name: "max-stale=N: stale by more, revalidated", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 2 * time.Minute, req2: []string{"Cache-Control: max-stale=30"}, want: revalidate},
	{sec: "9111 5.2.1.2", name: "max-stale without a value: any staleness", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 24 * time.Hour, req2: []string{"Cache-Control: max-stale"}, want: serveStale},
	{sec: "9111 5.2.1.2, 4.2.4", name: "max-stale does not override must-revalidate", resp: []string{"Cache-Control: max-age=60, must-revalidate", etag},
		stored: true, wait: 70 * time.Second, req2: []string{"Cache-Control: max-stale"}, want: revalidate},
	{sec: "9111 5.2.1.3", name: "min-fresh: not fresh for long enough, revalidated", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 50 * time.Second, req2: []string{"Cache-Control: min-fresh=20"}, want: revalidate},
	{sec: "9111 5.2.1.3", name: "min-fresh: fresh for long enough, served", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 10 * time.Second, req2: []string{"Cache-Control: min-fresh=20"}, want: serve},
	{sec: "9111 5.2.1.4", name: "request no-cache: a fresh response is revalidated", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, req2: []string{"Cache-Control: no-cache"}, want: revalidate},
	{sec: "9111 5.2.1.4", name: "request no-cache without a validator: fetched anew", resp: []string{"Cache-Control: max-age=60"},
		stored: true, req2: []string{"Cache-Control: no-cache"}, want: refetch},
	{sec: "9111 5.4", name: "Pragma: no-cache without Cache-Control is no-cache", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, req2: []string{"Pragma: no-cache"}, want: revalidate},
	{sec: "9111 5.2.1.5", name: "request no-store: the response is not stored", resp: []string{"Cache-Control: max-age=60"},
		req1: []string{"Cache-Control: no-store"}, stored: false, want: forward},
	{sec: "9111 5.2.1.5", name: "request no-store: a stored response may still serve it", resp: []string{"Cache-Control: max-age=60"},
		stored: true, req2: []string{"Cache-Control: no-store"}, want: serve},
	{sec: "9111 5.2.1.7", name: "only-if-cached: a fresh stored response", resp: []string{"Cache-Control: max-age=60"},
		stored: true, req2: []string{"Cache-Control: only-if-cached"}, want: serve},
	{sec: "9111 5.2.1.7", name: "only-if-cached: stale, 504", resp: []string{"Cache-Control: max-age=60", etag},
		stored: true, wait: 2 * time.Minute, req2: []string{"Cache-Control: only-if-cached"}, want: timeout504},
	{sec: "9111 5.2.1.7", name: "only-if-cached: nothing stored, 504", resp: []string{"Cache-Control: private"},
		stored: false, req2: []string{"Cache-Control: only-if-cached"}, want: timeout504},
	{sec: "9111 5.2.1.7, 5.2.1.2", name: "only-if-cached with max-stale: the stale response", resp: []string{"Cache-Control: max-age=60"},
		stored: true, wait: 2 * time.Minute, req2: []string{"Cache-Control: only-if-cached, max-stale"}, want: serveStale},

	// Stored fields, RFC 9111 section 3.1.
	{sec: "9111 3.1", name: "end-to-end fields are stored, Content-Range on a 200 too", resp: []string{"Cache-Control: max-age=60", "Content-Range: bytes 0-1/2", "X-Any: a"},
		stored: true, want: serve, check: func(t *testing.T, _, second result) {
			if second.get("Content-Range") != "bytes 0-1/2" || second.get("X-Any") != "a" {
				t.Errorf("hit lost fields: Content-Range %q X-Any %q", second.get("Content-Range"), second.get("X-Any"))
			}
		}},
	{sec: "9111 3.1", name: "fields named by Connection are not stored", resp: []string{"Cache-Control: max-age=60", "Connection: X-Hop", "X-Hop: 1"},
		stored: true, want: serve, check: func(t *testing.T, _, second result) {
			if second.get("X-Hop") != "" {
				t.Errorf("hop-by-hop field stored")
			}
		}},
}

// fieldOnFirstOnly checks that a field withheld from storage reached the
// client whose request fetched the response, and no later one.
func fieldOnFirstOnly(name, value string) func(t *testing.T, first, second result) {
	return func(t *testing.T, first, second result) {
		if first.get(name) != value || second.get(name) != "" {
			t.Errorf("%s: %q on the first response (want %q), %q on the second (want none)", name, first.get(name), value, second.get(name))
		}
	}
}

func TestRFC9111ConformanceTable(t *testing.T) {
	for _, row := range conformanceRows {
		t.Run(row.sec+" "+row.name, func(t *testing.T) {
			e := newEnv(t)
			pol := row.pol
			pol.Enabled = true
			e.pol = &pol
			status := row.status
			if status == 0 {
				status = 200
			}
			o := newOrigin(func(req *httphead.Request, n int) answer {
				switch {
				case n == 1:
					return answer{status: status, headers: row.resp, body: "v1"}
				case row.then == thenDown:
					return answer{err: errOriginDown}
				case row.then == then500:
					return answer{status: 500, body: "error"}
				case req.Header.Has("If-None-Match") || req.Header.Has("If-Modified-Since"):
					return answer{status: 304, headers: row.resp}
				}
				return answer{status: status, headers: row.resp, body: "v2"}
			})
			first := e.get(o, "/c", row.req1...)
			if first.body != "v1" || first.status != status {
				t.Fatalf("first response: %d %q", first.status, first.body)
			}
			if stored := e.isStored("/c", row.req1...); stored != row.stored {
				t.Errorf("stored = %v, want %v (%q)", stored, row.stored, first.get("Cache-Status"))
			}
			e.clock.Advance(row.wait)
			second := e.get(o, "/c", row.req2...)
			e.waitFills()
			if got := decided(second, o); got != row.want {
				t.Errorf("second request: %s (%v, %d %q, Cache-Status %q, %d origin requests), want %s",
					decisionNames[got], second.code, second.status, second.body, second.get("Cache-Status"), o.count.Load(), decisionNames[row.want])
			}
			if row.check != nil {
				row.check(t, first, second)
			}
		})
	}
}

// decided tells from a reply and the origin's log what the cache did.
func decided(r result, o *origin) decision {
	switch {
	case r.status == 504 && o.count.Load() == 1:
		return timeout504
	case r.status == -1 || r.status == 500:
		return failed
	case r.code == StatusHit && r.body == "v1" && o.count.Load() == 1:
		return serve
	case (r.code == StatusStale || r.code == StatusStaleUpdating) && r.body == "v1":
		return serveStale
	case r.code == StatusRevalidated && r.body == "v1" && (o.last().Header.Has("If-None-Match") || o.last().Header.Has("If-Modified-Since")):
		return revalidate
	case r.code == StatusExpired && r.body == "v2":
		return refetch
	case (r.code == StatusMiss || r.code == StatusPass) && r.body == "v2":
		return forward
	}
	return 0
}
