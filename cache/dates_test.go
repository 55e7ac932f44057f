package cache

import (
	"github.com/outpost-edge/outpost/cache/cachecontrol"
	"testing"
	"time"
)

// RFC 9110 section 5.6.7: a recipient parses the three HTTP-date forms,
// and only those.
func TestRFC9110Section5_6_7HTTPDateIsParsedStrictly(t *testing.T) {
	want := time.Date(1994, time.November, 6, 8, 49, 37, 0, time.UTC)
	for _, good := range []string{
		"Sun, 06 Nov 1994 08:49:37 GMT",
		"Sunday, 06-Nov-94 08:49:37 GMT",
		"Sun Nov  6 08:49:37 1994",
	} {
		if got, ok := parseDate([]byte(good)); !ok || !got.Equal(want) {
			t.Errorf("%q: %v %v", good, got, ok)
		}
	}
	for _, bad := range []string{
		"Sun,  06 Nov 1994 08:49:37 GMT", // two spaces
		"Sun, 06 Nov 1994 8:49:37 GMT",   // one-digit hour
		"Sun, 06 Nov 1994 08:49:37",      // no GMT
		"Sun, 06 Nov 1994 08:49:37 UTC",
		"Sun, 6 Nov 1994 08:49:37 GMT",
		"Sun Nov 6 08:49:37 1994",
		"Sunday, 06-Nov-1994 08:49:37 GMT",
		"0", "", "Sun, 06 Nov 1994 08:49:37 GMT ",
	} {
		if _, ok := parseDate([]byte(bad)); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

// RFC 9111 section 5.3: an invalid Expires, or more than one, means the
// response is already expired.
func TestRFC9111Section5_3InvalidOrRepeatedExpiresIsStale(t *testing.T) {
	in := func(d time.Duration) string { return httpDate(epoch0.Add(d)) }
	for _, tc := range []struct {
		name    string
		headers []string
		hit     bool
	}{
		{"one valid Expires", []string{"Date: " + in(0), "Expires: " + in(time.Hour)}, true},
		{"two spaces", []string{"Date: " + in(0), "Expires: Sun,  06 Nov 2033 08:49:37 GMT", "ETag: \"x\""}, false},
		{"two Expires lines", []string{"Date: " + in(0), "Expires: " + in(time.Hour), "Expires: " + in(time.Hour), "ETag: \"x\""}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(answer{headers: tc.headers, body: "b"})
			e.get(o, "/e")
			e.waitFills()
			e.clock.Advance(time.Minute)
			e.get(o, "/e")
			if hit := int(o.count.Load()) == 1; hit != tc.hit {
				t.Errorf("served from cache: %v, want %v (%d fetches)", hit, tc.hit, int(o.count.Load()))
			}
		})
	}
}

// RFC 9111 section 5.1: of a list-based Age the first member counts, and
// an Age that is not a non-negative integer is not "age 0".
func TestRFC9111Section5_1AgeListAndInvalidAge(t *testing.T) {
	for _, tc := range []struct {
		age  string
		want time.Duration
	}{
		{"7200, 0", 7200 * time.Second},
		{"30", 30 * time.Second},
		{" 12 ", 12 * time.Second},
		{"-5", seconds(cachecontrol.MaxDelta)},
		{"abc", seconds(cachecontrol.MaxDelta)},
		{"", seconds(cachecontrol.MaxDelta)},
	} {
		if got := parseAge([]byte(tc.age)); got != tc.want {
			t.Errorf("Age %q: %v, want %v", tc.age, got, tc.want)
		}
	}
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=3600", "Age: 7200, 0", "ETag: \"x\""}, body: "b"})
	e.get(o, "/a")
	e.waitFills()
	e.get(o, "/a")
	if int(o.count.Load()) != 2 {
		t.Errorf("a response aged 7200s with max-age=3600 was served fresh (%d fetches)", int(o.count.Load()))
	}
}

// RFC 9213 section 2.1: a targeted field that does not parse is ignored
// whole; it is never partly obeyed, and never overrides Cache-Control.
func TestRFC9213Section2_1InvalidTargetedFieldIsIgnoredWhole(t *testing.T) {
	for _, cdn := range []string{"max-age=10000, &&&&&", `max-age="10000"`, "Max-Age=10000", "max-age=ten"} {
		t.Run(cdn, func(t *testing.T) {
			if _, ok := cachecontrol.ParseTargeted([]byte(cdn)); ok {
				t.Fatalf("%q parsed as a valid targeted field", cdn)
			}
			e := newEnv(t)
			o := fixed(answer{headers: []string{"Cache-Control: no-store", "CDN-Cache-Control: " + cdn}, body: "b"})
			e.get(o, "/t")
			e.waitFills()
			e.get(o, "/t")
			if n := o.count.Load(); n != 2 {
				t.Errorf("CDN-Cache-Control %q overrode no-store: %d fetches", cdn, n)
			}
		})
	}
	if d, ok := cachecontrol.ParseTargeted([]byte("max-age=60, stale-if-error=30;x=1, must-revalidate")); !ok || d.MaxAge != 60 {
		t.Errorf("a valid field: %v %v", d.MaxAge, ok)
	}
}

// RFC 9110 section 13.2.2: the client's own precondition is evaluated on
// the response it gets even when the cache does not store it (the cache
// fetched unconditionally, to have a body to store).
func TestRFC9110Section13_2_2ClientConditionalOnAnUnstoredMiss(t *testing.T) {
	for _, tc := range []struct {
		name, cond string
		want       int
	}{
		{"etag matches", "If-None-Match: \"v1\"", 304},
		{"etag differs", "If-None-Match: \"v0\"", 200},
		{"not modified since", "If-Modified-Since: " + httpDate(epoch0), 304},
		{"modified since", "If-Modified-Since: " + httpDate(epoch0.Add(-2*time.Hour)), 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(answer{headers: []string{"Cache-Control: no-store", "ETag: \"v1\"",
				"Last-Modified: " + httpDate(epoch0.Add(-time.Hour))}, body: "full body"})
			r := e.get(o, "/c", tc.cond)
			if r.status != tc.want || tc.want == 304 && r.body != "" {
				t.Errorf("%s: %d %q, want %d", tc.cond, r.status, r.body, tc.want)
			}
		})
	}
}

// RFC 9110 sections 13.1.1 and 13.1.4: If-Match and If-Unmodified-Since
// on a GET answered from the cache are evaluated (412 when they fail),
// before If-None-Match (section 13.2.2).
func TestRFC9110Section13_1IfMatchAndIfUnmodifiedSinceOnAHit(t *testing.T) {
	for _, tc := range []struct {
		name, cond string
		want       int
	}{
		{"If-Match matches", "If-Match: \"v1\"", 200},
		{"If-Match star", "If-Match: *", 200},
		{"If-Match differs", "If-Match: \"v0\"", 412},
		{"If-Match weak never matches", "If-Match: W/\"v1\"", 412},
		{"unmodified since", "If-Unmodified-Since: " + httpDate(epoch0), 200},
		{"modified since", "If-Unmodified-Since: " + httpDate(epoch0.Add(-2*time.Hour)), 412},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(answer{headers: []string{"Cache-Control: max-age=600", "ETag: \"v1\"",
				"Last-Modified: " + httpDate(epoch0.Add(-time.Hour))}, body: "full body"})
			e.get(o, "/m")
			e.waitFills()
			r := e.get(o, "/m", tc.cond)
			if r.status != tc.want || o.count.Load() != 1 {
				t.Errorf("%s: %d after %d fetches, want %d from the cache", tc.cond, r.status, o.count.Load(), tc.want)
			}
		})
	}
}
