package cache

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/purge"
	"github.com/outpost-edge/outpost/storage"
)

// purgeEnv is env over the purge package's indexed store, as the edge
// wires it, with a purger.
type purgeEnv struct {
	*env
	ps *purge.Store
	p  *purge.Purger
}

func newPurgeEnv(t *testing.T) *purgeEnv {
	e := newEnv(t)
	ps := purge.Wrap(e.store, EachTag)
	e.store = ps
	e.c = New(ps, Options{Clock: e.clock.Now})
	return &purgeEnv{env: e, ps: ps, p: purge.New(ps, e.c)}
}

// purgeURL purges target as the edge does, through the purger.
func (e *purgeEnv) purgeURL(target string, soft bool) {
	e.p.URL(func() bool { return e.c.PurgeURL(e.pol, getURL("https", "example.com", target), soft) })
}

// TestA304SentBeforeASoftPurgeDoesNotRefreshTheObject: the 304 confirms
// the object as it was before the purge; the client gets it, but the
// stored object stays purged and the next request revalidates.
func TestA304SentBeforeASoftPurgeDoesNotRefreshTheObject(t *testing.T) {
	e := newPurgeEnv(t)
	started, gate := make(chan struct{}), make(chan struct{})
	o := newOrigin(func(_ *httphead.Request, n int) answer {
		switch n {
		case 1:
			return answer{headers: []string{"Cache-Control: max-age=10", `ETag: "a"`}, body: "old"}
		case 2:
			close(started)
			<-gate
			return answer{status: 304, headers: []string{"Cache-Control: max-age=60", `ETag: "a"`}}
		}
		return answer{headers: []string{"Cache-Control: max-age=60", `ETag: "b"`}, body: "new"}
	})
	e.get(o, "/r")
	e.clock.Advance(20 * time.Second)
	done := make(chan result, 1)
	go func() { done <- e.get(o, "/r") }()
	<-started
	e.purgeURL("/r", true)
	close(gate)
	if r := <-done; r.code != StatusRevalidated || r.body != "old" {
		t.Fatalf("revalidating request: %v %q (%s)", r.code, r.body, r.get("Cache-Status"))
	}
	r := e.get(o, "/r")
	if r.code == StatusHit || o.count.Load() != 3 || r.body != "new" {
		t.Errorf("after the purge: %v %q, %d origin requests; want a fetch of the new body", r.code, r.body, o.count.Load())
	}
}

// TestAFillSentBeforeAPurgeIsNotStored: the response headers arrive after
// the purge, but the body was asked for before it, so it is not stored as
// fresh: a plain object is refused, a new variant of a soft-purged one is
// stored stale.
func TestAFillSentBeforeAPurgeIsNotStored(t *testing.T) {
	tests := []struct {
		name       string
		soft, vary bool
	}{
		{"hard", false, false},
		{"soft", true, false},
		{"hard, new variant", false, true},
		{"soft, new variant", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newPurgeEnv(t)
			started, gate := make(chan struct{}), make(chan struct{})
			held := 1
			if tt.vary {
				held = 2 // the first request stores the marker and another variant
			}
			o := newOrigin(func(_ *httphead.Request, n int) answer {
				if n == held {
					close(started)
					<-gate
				}
				return answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding", `ETag: "e"`},
					body: "body " + strconv.Itoa(n)}
			})
			if tt.vary {
				e.get(o, "/f", "Accept-Encoding: br")
			}
			done := make(chan result, 1)
			go func() { done <- e.get(o, "/f", "Accept-Encoding: gzip") }()
			<-started
			e.purgeURL("/f", tt.soft)
			e.clock.Advance(time.Second) // the response arrives after the purge
			close(gate)
			if r := <-done; r.body != "body "+strconv.Itoa(held) {
				t.Fatalf("request in flight: %q %v", r.body, r.readErr)
			}
			e.waitFills()
			if r := e.get(o, "/f", "Accept-Encoding: gzip"); r.code == StatusHit || int(o.count.Load()) != held+1 {
				t.Errorf("after the purge: %v %q, %d origin requests; want it fetched again", r.code, r.body, o.count.Load())
			}
		})
	}
}

// commitFailStore fails every Commit, as a store that cannot make room or
// rename its file would, leaving the written bytes readable.
type commitFailStore struct{ storage.Store }

var errCommit = errors.New("commit refused")

func (s commitFailStore) Create(key string, meta []byte, sizeHint int64) (storage.Writer, error) {
	w, err := s.Store.Create(key, meta, sizeHint)
	return commitFailWriter{w}, err
}

type commitFailWriter struct{ storage.Writer }

func (commitFailWriter) Commit() error { return errCommit }

// TestACommitFailureStillServesTheWholeBody: the leader and a request
// collapsed onto its fill both get every byte; only the store misses it.
func TestACommitFailureStillServesTheWholeBody(t *testing.T) {
	e := newEnv(t)
	e.c = New(commitFailStore{e.store}, Options{Clock: e.clock.Now})
	payload := strings.Repeat("c", 100<<10)
	gate := make(chan struct{})
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: payload, gate: gate})
	var reps []*Reply
	for range 2 {
		rep, err := e.c.Serve(e.originOf(context.Background(), o.fetch), request("GET", "/c"), e.pol, nil)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	if reps[1].Status != StatusCollapsed {
		t.Fatalf("second request %v, want collapsed", reps[1].Status)
	}
	close(gate)
	for i, rep := range reps {
		if r := readReply(rep); r.readErr != nil || r.body != payload {
			t.Errorf("request %d: %d bytes, err %v", i, len(r.body), r.readErr)
		}
	}
	e.waitFills()
	if n := e.store.Stats().Objects; n != 0 || e.c.Stats().Stored.Load() != 0 || e.c.Stats().Aborted.Load() != 1 {
		t.Errorf("%d objects, stored %d, aborted %d; want nothing stored and one fill aborted",
			n, e.c.Stats().Stored.Load(), e.c.Stats().Aborted.Load())
	}
}

// TestStaleServedShowsANegativeTTL: RFC 9211 section 2.3, a stale
// response's ttl is negative, also just after it expired.
func TestStaleServedShowsANegativeTTL(t *testing.T) {
	tests := []struct {
		name    string
		cc      string
		headers []string
		stale   func(e *env)
		want    Status
	}{
		{"soft-purged within stale-while-revalidate", "max-age=60, stale-while-revalidate=30", nil,
			func(e *env) { e.c.PurgeURL(e.pol, getURL("https", "example.com", "/s"), true) }, StatusStaleUpdating},
		{"max-stale just after expiry", "max-age=60", []string{"Cache-Control: max-stale=10"},
			func(e *env) { e.clock.Advance(60 * time.Second) }, StatusStale},
		{"stale-if-error just after expiry", "max-age=60, stale-if-error=30", nil,
			func(e *env) { e.clock.Advance(60 * time.Second) }, StatusStale},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			o := newOrigin(func(_ *httphead.Request, n int) answer {
				if n > 1 {
					return answer{err: errOriginDown}
				}
				return answer{headers: []string{"Cache-Control: " + tt.cc}, body: "s"}
			})
			e.get(o, "/s")
			tt.stale(e)
			r := e.get(o, "/s", tt.headers...)
			e.waitFills()
			cs := r.get("Cache-Status")
			_, ttl, _ := strings.Cut(cs, "ttl=")
			ttl, _, _ = strings.Cut(ttl, ";")
			if n, err := strconv.Atoi(ttl); r.code != tt.want || err != nil || n >= 0 {
				t.Errorf("%v, Cache-Status %q; want %v with a negative ttl", r.code, cs, tt.want)
			}
		})
	}
}

// TestAHardPurgeOfAVaryingURLRemovesItsVariants: the marker, every
// variant and their surrogate keys go; another URL's variants stay.
func TestAHardPurgeOfAVaryingURLRemovesItsVariants(t *testing.T) {
	e := newPurgeEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding", "Surrogate-Key: t"}, body: "v"})
	for _, target := range []string{"/v", "/v2"} {
		for _, ae := range []string{"gzip", "br"} {
			e.get(o, target, "Accept-Encoding: "+ae)
		}
	}
	e.waitFills()
	if n := e.store.Stats().Objects; n != 6 {
		t.Fatalf("%d objects stored, want 2 markers and 4 variants", n)
	}
	e.purgeURL("/v", false)
	if n, tagged := e.store.Stats().Objects, len(e.ps.Keys("t")); n != 3 || tagged != 2 {
		t.Errorf("after the purge: %d objects, %d tagged; want /v2's marker and 2 variants", n, tagged)
	}
	if r := e.get(o, "/v2", "Accept-Encoding: br"); r.code != StatusHit {
		t.Errorf("/v2 after purging /v: %v", r.code)
	}
	if r := e.get(o, "/v", "Accept-Encoding: br"); r.code != StatusMiss {
		t.Errorf("/v after its purge: %v", r.code)
	}
}

// TestOnlySharedFetchesAreDetached: a detached context (costly: the
// engine copies the request state) is made for a fetch other requests
// may follow, once, and never for one no one else can share.
func TestOnlySharedFetchesAreDetached(t *testing.T) {
	tests := []struct {
		name    string
		cc      string
		prime   bool // one request first, to store or mark the key
		advance time.Duration
		headers []string
		want    int
	}{
		{"a miss others may join", "max-age=60", false, 0, nil, 1},
		{"a request that says no-store", "max-age=60", false, 0, []string{"Cache-Control: no-store"}, 0},
		{"hit-for-pass", "no-store", true, 0, nil, 0},
		{"a stale-while-revalidate refresh", "max-age=60, stale-while-revalidate=60", true, 90 * time.Second, nil, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			o := fixed(answer{headers: []string{"Cache-Control: " + tt.cc}, body: "d"})
			if tt.prime {
				e.get(o, "/d")
				e.waitFills()
			}
			e.clock.Advance(tt.advance)
			e.detached.Store(0)
			e.get(o, "/d", tt.headers...)
			e.waitFills()
			if n := int(e.detached.Load()); n != tt.want {
				t.Errorf("%d detached contexts, want %d", n, tt.want)
			}
		})
	}
}

// TestALockTimeoutFetchesWithTheRequestContext: a request that gave up
// waiting on another's fetch fetches alone, so it needs no detached
// context; the fetch it waited on had one.
func TestALockTimeoutFetchesWithTheRequestContext(t *testing.T) {
	e := newEnv(t)
	detached := &e.detached
	e.pol.LockTimeout = time.Millisecond
	started, gate := make(chan struct{}), make(chan struct{})
	o := newOrigin(func(_ *httphead.Request, n int) answer {
		if n == 1 {
			close(started)
			<-gate
		}
		return answer{headers: []string{"Cache-Control: max-age=60"}, body: "l"}
	})
	done := make(chan result, 1)
	go func() { done <- e.get(o, "/l") }()
	<-started
	r := e.get(o, "/l")
	close(gate)
	<-done
	e.waitFills()
	if r.reason != ReasonLockTimeout || detached.Load() != 1 {
		t.Errorf("%v (%v), %d detached contexts; want a lock timeout and only the leader's fetch detached",
			r.code, r.reason, detached.Load())
	}
}
