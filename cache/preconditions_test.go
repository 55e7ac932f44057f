package cache

import (
	"strings"
	"testing"
	"time"
)

// RFC 9110 sections 13.1.1, 13.1.4 and the order of 13.2.2: a client's
// If-Match and If-Unmodified-Since are evaluated against the response it
// gets when the cache fetched without them (412 when they fail), before
// If-None-Match, whether the response is stored (the fill it leads) or
// not. An unsafe method's preconditions are the origin's to judge: the
// cache forwards them and relays the origin's answer as it is.
func TestRFC9110Section13_1PreconditionsOnAMiss(t *testing.T) {
	lastMod := "Last-Modified: " + httpDate(epoch0.Add(-time.Hour))
	for _, tc := range []struct {
		name, method, cc string
		conds            []string
		want             int
	}{
		{"unstored, If-Match matches", "GET", "no-store", []string{"If-Match: \"v1\""}, 200},
		{"unstored, If-Match differs", "GET", "no-store", []string{"If-Match: \"v0\""}, 412},
		{"unstored HEAD, If-Match differs", "HEAD", "no-store", []string{"If-Match: \"v0\""}, 412},
		{"unstored, modified since", "GET", "no-store", []string{"If-Unmodified-Since: " + httpDate(epoch0.Add(-2*time.Hour))}, 412},
		{"unstored, unmodified since", "GET", "no-store", []string{"If-Unmodified-Since: " + httpDate(epoch0)}, 200},
		{"unstored, If-Match before If-None-Match", "GET", "no-store", []string{"If-Match: \"v0\"", "If-None-Match: \"v1\""}, 412},
		{"stored, If-Match differs", "GET", "max-age=600", []string{"If-Match: \"v0\""}, 412},
		{"stored, modified since", "GET", "max-age=600", []string{"If-Unmodified-Since: " + httpDate(epoch0.Add(-2*time.Hour))}, 412},
		{"stored, If-Match matches", "GET", "max-age=600", []string{"If-Match: \"v1\""}, 200},
		{"unsafe method, If-Match differs", "POST", "no-store", []string{"If-Match: \"v0\""}, 200},
		{"unsafe method, If-None-Match matches", "POST", "no-store", []string{"If-None-Match: \"v1\""}, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(answer{headers: []string{"Cache-Control: " + tc.cc, "ETag: \"v1\"", lastMod}, body: "full body"})
			r := e.do(o, tc.method, "/p", tc.conds...)
			if r.status != tc.want || tc.want != 200 && r.body != "" {
				t.Fatalf("%v: %d %q, want %d", tc.conds, r.status, r.body, tc.want)
			}
			if tc.method == "POST" {
				name, _, _ := strings.Cut(tc.conds[0], ":")
				if got := o.reqs[0].Header.Peek(name); got == nil {
					t.Errorf("the precondition of a POST was not forwarded to the origin")
				}
			}
			if tc.cc == "max-age=600" {
				e.waitFills()
				if r := e.get(o, "/p"); r.status != 200 || r.body != "full body" || o.count.Load() != 1 {
					t.Errorf("after the fill: %d %q with %d fetches, want the stored body", r.status, r.body, o.count.Load())
				}
			}
		})
	}
}
