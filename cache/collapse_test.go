package cache

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// TestCollapsingMakesOneOriginFetch sends 100 concurrent requests for one
// key while the origin holds back the second half of the body: the origin
// sees one request, and every client reads the first half before the
// origin sends the rest.
func TestCollapsingMakesOneOriginFetch(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	payload := strings.Repeat("0123456789", 10000)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: payload, gate: gate})
	const clients = 100
	half := len(payload) / 2
	var firstHalf, done sync.WaitGroup
	firstHalf.Add(clients)
	done.Add(clients)
	results := make([]result, clients)
	for i := range clients {
		go func() {
			defer done.Done()
			rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("GET", "/big"), e.pol, nil)
			if err != nil {
				results[i].readErr = err
				firstHalf.Done()
				return
			}
			results[i].code = rep.Status
			got := make([]byte, 0, len(payload))
			buf := make([]byte, 4096)
			signalled := false
			for {
				n, err := rep.Body.Read(buf)
				got = append(got, buf[:n]...)
				if !signalled && len(got) >= half {
					firstHalf.Done()
					signalled = true
				}
				if err != nil {
					if err != io.EOF {
						results[i].readErr = err
					}
					break
				}
			}
			if !signalled {
				firstHalf.Done()
			}
			results[i].body = string(got)
			rep.Close()
		}()
	}
	waitOrFail(t, &firstHalf, "clients did not get the first half before the fill completed")
	close(gate)
	waitOrFail(t, &done, "clients did not finish")
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	collapsed := 0
	for i, r := range results {
		if r.readErr != nil || r.body != payload {
			t.Fatalf("client %d: err %v, %d bytes", i, r.readErr, len(r.body))
		}
		if r.code == StatusCollapsed {
			collapsed++
		}
	}
	if collapsed == 0 || e.c.Stats().Collapsed.Load() == 0 {
		t.Errorf("no request counted as collapsed")
	}
	e.waitFills()
	if r := e.get(o, "/big"); r.code != StatusHit || r.body != payload {
		t.Errorf("after fill: %v %d bytes", r.code, len(r.body))
	}
}

func waitOrFail(t *testing.T, wg *sync.WaitGroup, msg string) {
	t.Helper()
	ch := make(chan struct{})
	go func() { wg.Wait(); close(ch) }()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatal(msg)
	}
}

// TestUncacheableReleasesWaitersAndPasses checks hit-for-pass: waiters on
// a private response go to the origin themselves, and later requests for
// the key are not collapsed.
func TestUncacheableReleasesWaitersAndPasses(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			<-release
		}
		return answer{headers: []string{"Cache-Control: private"}, body: "mine"}
	})
	var wg sync.WaitGroup
	codes := make([]Status, 5)
	start := make(chan struct{})
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i > 0 {
				<-start
			}
			r := e.get(o, "/private")
			if r.body != "mine" {
				t.Errorf("client %d body %q", i, r.body)
			}
			codes[i] = r.code
		}()
	}
	// let the leader reach the origin, then the waiters queue on it
	deadline := time.Now().Add(5 * time.Second)
	for o.count.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(start)
	for e.c.Stats().Collapsed.Load() < 4 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := o.count.Load(); n != 5 {
		t.Errorf("origin saw %d requests, want 5 (waiters released)", n)
	}
	r := e.get(o, "/private")
	if r.code != StatusPass || r.reason != ReasonHitForPass {
		t.Errorf("after uncacheable: %v %v", r.code, r.reason)
	}
	e.clock.Advance(time.Minute) // hit-for-pass expires
	if r := e.get(o, "/private"); r.reason == ReasonHitForPass {
		t.Errorf("hit-for-pass did not expire")
	}
}

func TestLockTimeoutBoundsWaiting(t *testing.T) {
	e := newEnv(t)
	e.pol.LockTimeout = 20 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			<-release
		}
		return answer{headers: []string{"Cache-Control: max-age=60"}, body: "b"}
	})
	go e.get(o, "/slow")
	deadline := time.Now().Add(5 * time.Second)
	for o.count.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	r := e.get(o, "/slow")
	if r.body != "b" || r.reason != ReasonLockTimeout {
		t.Fatalf("got %v %v %q", r.code, r.reason, r.body)
	}
}

func TestOriginResetMidBodyStoresNothing(t *testing.T) {
	tests := []struct {
		name string
		a    answer
	}{
		{"reset with length", answer{headers: []string{"Cache-Control: max-age=60"}, body: "partial", bodyErr: io.ErrUnexpectedEOF, lieCL: 50}},
		{"reset chunked", answer{headers: []string{"Cache-Control: max-age=60"}, body: "partial", bodyErr: io.ErrUnexpectedEOF, lieCL: -1}},
		{"content-length lie", answer{headers: []string{"Cache-Control: max-age=60"}, body: "short", lieCL: 100}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(tt.a)
			r := e.get(o, "/reset")
			if r.readErr == nil {
				t.Errorf("client got a clean end of body: %q", r.body)
			}
			e.waitFills()
			if n := e.store.Stats().Objects; n != 0 {
				t.Errorf("%d objects stored", n)
			}
			if e.c.Stats().Aborted.Load() != 1 {
				t.Errorf("abort not counted")
			}
			if r := e.get(o, "/reset"); r.code == StatusHit {
				t.Errorf("truncated body served from cache")
			}
		})
	}
}

// TestUnknownLengthOverMaxSizeStreamsUnstored: a body of unknown length
// that passes MaxObjectSize half-way still reaches every client attached
// to the fill whole, through the spill window (several times its size, so
// the copier waits for the slowest reader), and nothing is stored.
func TestUnknownLengthOverMaxSizeStreamsUnstored(t *testing.T) {
	e := newEnv(t)
	e.pol.MaxObjectSize = 64 << 10
	payload := strings.Repeat("abcdefghijklmnop", 5*spillWindow/16)
	gate := make(chan struct{})
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: payload, lieCL: -1, gate: gate, gateAt: 1000})
	const clients = 8
	var wg sync.WaitGroup
	bodies := make([]string, clients)
	errs := make([]error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("GET", "/unk"), e.pol, nil)
			if err != nil {
				errs[i] = err
				return
			}
			defer rep.Close()
			var b strings.Builder
			buf := make([]byte, 1000+i*997) // readers of different speeds
			for {
				n, err := rep.Body.Read(buf)
				b.Write(buf[:n])
				if err == io.EOF {
					break
				}
				if err != nil {
					errs[i] = err
					break
				}
			}
			bodies[i] = b.String()
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.c.Stats().Collapsed.Load() < clients-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(gate)
	wg.Wait()
	for i := range clients {
		if errs[i] != nil || bodies[i] != payload {
			t.Errorf("client %d: err %v, %d of %d bytes", i, errs[i], len(bodies[i]), len(payload))
		}
	}
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	e.waitFills()
	if e.store.Stats().Objects != 0 {
		t.Error("oversized object stored")
	}
	if r := e.get(o, "/unk"); r.code != StatusPass || r.body != payload {
		t.Errorf("after oversize: %v, %d bytes", r.code, len(r.body))
	}
}

func TestStaleWhileRevalidate(t *testing.T) {
	e := newEnv(t)
	refetch := make(chan struct{})
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 2 {
			<-refetch
		}
		return answer{headers: []string{"Cache-Control: max-age=10, stale-while-revalidate=60"}, body: "v" + string(rune('0'+n))}
	})
	e.get(o, "/swr")
	e.clock.Advance(30 * time.Second)
	for i := range 3 {
		r := e.get(o, "/swr")
		if r.code != StatusStaleUpdating || r.body != "v1" {
			t.Fatalf("request %d: %v %q", i, r.code, r.body)
		}
	}
	close(refetch)
	e.waitFills()
	if n := o.count.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2 (one background refresh)", n)
	}
	if r := e.get(o, "/swr"); r.code != StatusHit || r.body != "v2" {
		t.Errorf("after refresh: %v %q", r.code, r.body)
	}
	e.clock.Advance(5 * time.Minute) // beyond the window: a normal revalidation
	if r := e.get(o, "/swr"); r.code != StatusExpired || r.body != "v3" {
		t.Errorf("beyond window: %v %q", r.code, r.body)
	}
}

func TestStaleIfError(t *testing.T) {
	tests := []struct {
		name   string
		fail   answer
		pol    Policy
		header string
		wait   time.Duration
		stale  bool
	}{
		{"origin down", answer{err: errOriginDown}, Policy{}, "max-age=10, stale-if-error=300", time.Minute, true},
		{"origin 503", answer{status: 503, body: "down"}, Policy{}, "max-age=10, stale-if-error=300", time.Minute, true},
		{"outside window", answer{err: errOriginDown}, Policy{}, "max-age=10, stale-if-error=30", time.Minute, false},
		{"policy default", answer{err: errOriginDown}, Policy{StaleIfError: time.Hour}, "max-age=10", time.Minute, true},
		{"policy default yields to must-revalidate", answer{err: errOriginDown}, Policy{StaleIfError: time.Hour}, "max-age=10, must-revalidate", time.Minute, false},
		{"explicit with s-maxage", answer{err: errOriginDown}, Policy{}, "s-maxage=10, stale-if-error=300", time.Minute, true},
		{"explicit yields to must-revalidate", answer{err: errOriginDown}, Policy{}, "max-age=10, stale-if-error=300, must-revalidate", time.Minute, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			pol := tt.pol
			pol.Enabled = true
			e.pol = &pol
			o := newOrigin(func(req *httphead.Request, n int) answer {
				if n == 1 {
					return answer{headers: []string{"Cache-Control: " + tt.header}, body: "good"}
				}
				return tt.fail
			})
			e.get(o, "/sie")
			e.clock.Advance(tt.wait)
			r := e.get(o, "/sie")
			served := r.code == StatusStale && r.body == "good" && r.reason == ReasonOriginError
			if served != tt.stale {
				t.Errorf("stale served = %v (%v %q %v), want %v", served, r.code, r.body, r.readErr, tt.stale)
			}
			if !tt.stale && tt.fail.err != nil && !errors.Is(r.readErr, errOriginDown) {
				t.Errorf("error = %v", r.readErr)
			}
		})
	}
}

func TestOriginKilledServesStaleForAllClients(t *testing.T) {
	e := newEnv(t)
	e.pol.StaleIfError = time.Hour
	var down sync.Once
	dead := make(chan struct{})
	o := newOrigin(func(req *httphead.Request, n int) answer {
		select {
		case <-dead:
			return answer{err: errOriginDown}
		default:
		}
		return answer{headers: []string{"Cache-Control: max-age=1"}, body: "page"}
	})
	e.get(o, "/k")
	down.Do(func() { close(dead) })
	e.clock.Advance(10 * time.Minute)
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get(o, "/k"); r.body != "page" || r.code != StatusStale {
				t.Errorf("got %v %q %v", r.code, r.body, r.readErr)
			}
		}()
	}
	wg.Wait()
}

func TestSoftPurgeServesStaleWhileRefreshing(t *testing.T) {
	e := newEnv(t)
	e.pol.StaleWhileRevalidate = time.Minute
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=3600", "Surrogate-Key: pkg"}, body: "v" + string(rune('0'+n))}
	})
	e.get(o, "/sp")
	if !e.c.Purge("https://example.com/sp", true) {
		t.Fatal("soft purge found nothing")
	}
	if r := e.get(o, "/sp"); r.code != StatusStaleUpdating || r.body != "v1" {
		t.Fatalf("after soft purge: %v %q", r.code, r.body)
	}
	e.waitFills()
	if r := e.get(o, "/sp"); r.code != StatusHit || r.body != "v2" {
		t.Fatalf("after refresh: %v %q", r.code, r.body)
	}
	if n := e.c.PurgeAll(false); n != 1 {
		t.Errorf("PurgeAll = %d", n)
	}
	if r := e.get(o, "/sp"); r.code != StatusMiss {
		t.Errorf("after PurgeAll: %v", r.code)
	}
}

// TestRevalidationIsCollapsed: concurrent requests for a stale object make
// one conditional request, and every client gets the stored body.
func TestRevalidationIsCollapsed(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			return answer{headers: []string{"Cache-Control: max-age=10", "ETag: \"e\""}, body: "stored"}
		}
		<-release
		return answer{status: 304, headers: []string{"Cache-Control: max-age=10"}}
	})
	e.get(o, "/rv")
	e.clock.Advance(time.Minute)
	const clients = 20
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get(o, "/rv"); r.body != "stored" || (r.code != StatusRevalidated && r.code != StatusHit) {
				t.Errorf("got %v %q %v", r.code, r.body, r.readErr)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.c.Stats().Collapsed.Load() < clients-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := o.count.Load(); n != 2 {
		t.Errorf("origin saw %d requests, want 2", n)
	}
}

// TestFailingOriginStaysCollapsed: a 5xx is not a reason for hit-for-pass,
// so concurrent requests to a failing origin still make one fetch at a time.
func TestFailingOriginStaysCollapsed(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{status: 503, body: "down"})
	e.get(o, "/fail")
	if e.c.inHitForPass(e.c.keys.intern([]byte("https://example.com/fail")), e.clock.Now()) {
		t.Fatal("a 503 marked the key hit-for-pass")
	}
	if r := e.get(o, "/fail"); r.reason == ReasonHitForPass || r.status != 503 {
		t.Fatalf("got %v %v %d", r.code, r.reason, r.status)
	}
}

// TestCollapsingKeepsVariantsApart: a request waiting on a fill for
// another variant of the same URL does not get that variant's body.
func TestCollapsingKeepsVariantsApart(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Language"},
			body: strings.Repeat(req.Header.Get("Accept-Language"), 100)}
	})
	var wg sync.WaitGroup
	langs := []string{"en", "fr", "fr", "en", "de"}
	for _, lang := range langs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := e.get(o, "/lang", "Accept-Language: "+lang)
			if r.body != strings.Repeat(lang, 100) {
				t.Errorf("%s got %q…", lang, r.body[:min(len(r.body), 10)])
			}
		}()
	}
	wg.Wait()
	e.waitFills()
	for _, lang := range []string{"en", "fr", "de"} {
		if r := e.get(o, "/lang", "Accept-Language: "+lang); r.body != strings.Repeat(lang, 100) {
			t.Errorf("stored %s variant is %q…", lang, r.body[:min(len(r.body), 10)])
		}
	}
}

// TestOriginErrorIsSharedWithWaiters: the clients collapsed onto a fetch
// that fails with a 5xx all get that answer; the failing origin is asked
// once, and nothing is stored.
func TestOriginErrorIsSharedWithWaiters(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			<-release
		}
		return answer{status: 503, headers: []string{"Retry-After: 5"}, body: "down for maintenance"}
	})
	const clients = 10
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if r := e.get(o, "/err"); r.status != 503 || r.body != "down for maintenance" || r.readErr != nil {
				t.Errorf("got %d %q %v", r.status, r.body, r.readErr)
			}
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for e.c.Stats().Collapsed.Load() < clients-1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if n := o.count.Load(); n != 1 {
		t.Errorf("origin saw %d requests, want 1", n)
	}
	e.waitFills()
	if e.store.Stats().Objects != 0 {
		t.Error("an error response was stored")
	}
}

// A request's max-stale=0 (RFC 9111 section 5.2.1.2: the client accepts
// no stale response) also keeps stale-while-revalidate (RFC 5861) from
// answering it: an edge asks its shield so, and the shield revalidates
// before it answers rather than hand the edge its stale copy.
func TestMaxStaleZeroBoundsStaleWhileRevalidate(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=10, stale-while-revalidate=60"}, body: "v" + string(rune('0'+n))}
	})
	e.get(o, "/swr0")
	e.clock.Advance(30 * time.Second)
	if r := e.get(o, "/swr0", "Cache-Control: max-stale=0"); r.code != StatusExpired || r.body != "v2" {
		t.Errorf("stale within the window, max-stale=0: %v %q, want a revalidation", r.code, r.body)
	}
	e.clock.Advance(30 * time.Second)
	if r := e.get(o, "/swr0"); r.code != StatusStaleUpdating {
		t.Errorf("without max-stale: %v, want stale-while-revalidate", r.code)
	}
}
