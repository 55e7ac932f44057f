package cache

import (
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// wave sends clients concurrent GETs of target while o holds back its
// first answer until every other client waits on that fetch, and returns
// what each got; results[0] is not necessarily the leader's.
func (e *env) wave(o *origin, release chan struct{}, target string, clients int) []result {
	e.t.Helper()
	results := make([]result, clients)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.get(o, target)
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.c.Stats().Collapsed.Load() < int64(clients-1) && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	waitOrFail(e.t, &wg, "clients did not finish")
	e.waitFills()
	return results
}

// heldOrigin answers a, holding its first answer until release is closed.
func heldOrigin(release chan struct{}, a answer) *origin {
	return newOrigin(func(_ *httphead.Request, n int) answer {
		if n == 1 {
			<-release
		}
		return a
	})
}

// TestSetCookieModes: a shared cache may store a response with Set-Cookie
// (RFC 9111 section 3) but must not hand one user's cookie to another
// (RFC 9111 section 7.3, RFC 6265 section 8). Each route chooses; the
// default passes, as Varnish and Fastly do.
func TestSetCookieModes(t *testing.T) {
	tests := []struct {
		mode       SetCookieMode
		stored     bool
		hitCookie  string // Set-Cookie on the second request, served from the cache
		secondCode Status
	}{
		{SetCookiePass, false, "id=1", StatusPass},
		{SetCookieStrip, true, "", StatusHit},
		{SetCookieStore, true, "id=1", StatusHit},
	}
	for _, tt := range tests {
		t.Run(map[SetCookieMode]string{SetCookiePass: "pass", SetCookieStrip: "strip", SetCookieStore: "store"}[tt.mode], func(t *testing.T) {
			e := newEnv(t)
			e.pol.SetCookie = tt.mode
			o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Set-Cookie: id=1", "X-Other: o"}, body: "b"})
			r := e.get(o, "/sc")
			if r.get("Set-Cookie") != "id=1" || r.get("X-Other") != "o" {
				t.Errorf("the client whose request fetched it: Set-Cookie %q X-Other %q", r.get("Set-Cookie"), r.get("X-Other"))
			}
			if stored := r.reason != ReasonSetCookie; stored != tt.stored {
				t.Errorf("stored = %v (%v), want %v", stored, r.reason, tt.stored)
			}
			e.waitFills()
			r = e.get(o, "/sc")
			if r.code != tt.secondCode || r.get("Set-Cookie") != tt.hitCookie || r.body != "b" {
				t.Errorf("second request: %v, Set-Cookie %q, want %v %q", r.code, r.get("Set-Cookie"), tt.secondCode, tt.hitCookie)
			}
		})
	}
}

// TestSetCookieStripKeepsItFromCollapsedWaiters: the clients that waited on
// the fetch share its stored copy, not the cookie.
func TestSetCookieStripKeepsItFromCollapsedWaiters(t *testing.T) {
	e := newEnv(t)
	e.pol.SetCookie = SetCookieStrip
	release := make(chan struct{})
	o := heldOrigin(release, answer{headers: []string{"Cache-Control: max-age=60", "Set-Cookie: id=1"}, body: "b"})
	with := 0
	for _, r := range e.wave(o, release, "/scw", 5) {
		if r.get("Set-Cookie") != "" {
			with++
		}
		if r.body != "b" {
			t.Errorf("body %q", r.body)
		}
	}
	if with != 1 || o.count.Load() != 1 {
		t.Errorf("%d clients got the cookie, want 1 (the leader); origin saw %d requests", with, o.count.Load())
	}
}

// TestOriginErrorWithSetCookieIsNotSharedWithWaiters: an error relayed to
// the waiters of its fetch carries its cookie to the leader only.
func TestOriginErrorWithSetCookieIsNotSharedWithWaiters(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	o := heldOrigin(release, answer{status: 503, headers: []string{"Set-Cookie: id=1"}, body: "down"})
	with := 0
	for _, r := range e.wave(o, release, "/sce", 5) {
		if r.get("Set-Cookie") != "" {
			with++
		}
		if r.status != 503 {
			t.Errorf("status %d", r.status)
		}
	}
	if with != 1 || o.count.Load() != 1 {
		t.Errorf("%d clients got the cookie, want 1; origin saw %d requests", with, o.count.Load())
	}
}

// TestRFC9111Section5_2_2_7PrivateSetCookieIsStoredWithoutIt: with the
// default pass mode, an origin that names Set-Cookie in private= (or
// no-cache=, section 5.2.2.4) lets the rest of the response be stored.
func TestRFC9111Section5_2_2_7PrivateSetCookieIsStoredWithoutIt(t *testing.T) {
	for _, cc := range []string{`private="Set-Cookie"`, `no-cache="Set-Cookie"`} {
		e := newEnv(t)
		o := fixed(answer{headers: []string{"Cache-Control: max-age=60, " + cc, "Set-Cookie: id=1"}, body: "b"})
		if r := e.get(o, "/p"); r.reason != ReasonNone || r.get("Set-Cookie") != "id=1" {
			t.Errorf("%s: fill %v, Set-Cookie %q", cc, r.reason, r.get("Set-Cookie"))
		}
		e.waitFills()
		if r := e.get(o, "/p"); r.code != StatusHit || r.get("Set-Cookie") != "" {
			t.Errorf("%s: second request %v, Set-Cookie %q", cc, r.code, r.get("Set-Cookie"))
		}
	}
}

// TestRevalidationSetCookieGoesToItsClientOnly: a 304 updates the stored
// fields (RFC 9111 section 3.2) but never with a cookie, whatever the mode
// short of store.
func TestRevalidationSetCookieGoesToItsClientOnly(t *testing.T) {
	for _, mode := range []SetCookieMode{SetCookiePass, SetCookieStrip} {
		e := newEnv(t)
		e.pol.SetCookie = mode
		o := newOrigin(func(req *httphead.Request, n int) answer {
			if n == 1 {
				return answer{headers: []string{"Cache-Control: max-age=10", "ETag: \"e\""}, body: "b"}
			}
			return answer{status: 304, headers: []string{"Cache-Control: max-age=60", "Set-Cookie: id=2"}}
		})
		e.get(o, "/rv")
		e.waitFills()
		e.clock.Advance(time.Minute)
		if r := e.get(o, "/rv"); r.code != StatusRevalidated || r.get("Set-Cookie") != "id=2" {
			t.Errorf("mode %d: revalidation %v, Set-Cookie %q", mode, r.code, r.get("Set-Cookie"))
		}
		if r := e.get(o, "/rv"); r.code != StatusHit || r.get("Set-Cookie") != "" {
			t.Errorf("mode %d: hit after revalidation %v, Set-Cookie %q", mode, r.code, r.get("Set-Cookie"))
		}
	}
}
