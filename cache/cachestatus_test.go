package cache

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/trace"
)

// TestRFC9211StoredOnlyOnceTheObjectIsIn: the head of a miss goes out
// before its body is in, so it cannot say stored (RFC 9211 section 2.5:
// the cache stored the response); the trace says what became of it once
// the reply is done. A fill with nothing to wait for (an empty body) is
// committed first and says stored.
func TestRFC9211StoredOnlyOnceTheObjectIsIn(t *testing.T) {
	e := newEnv(t)
	gate := make(chan struct{})
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: strings.Repeat("x", 1000), gate: gate})
	tr := &trace.Trace{}
	tr.Reset(time.Now())
	rep, err := e.c.Serve(e.originOf(context.Background(), o.fetch), request("GET", "/streamed"), e.pol, tr)
	if err != nil {
		t.Fatal(err)
	}
	if got := rep.Head.Header.Get("Cache-Status"); got != "Outpost; fwd=uri-miss; fwd-status=200; ttl=60" {
		t.Errorf("head of a miss still streaming: Cache-Status %q", got)
	}
	if got := tr.Find("cache-store"); got != "storing" {
		t.Errorf("trace before the body: cache-store=%q", got)
	}
	close(gate)
	if _, err := io.ReadAll(rep.Body); err != nil {
		t.Fatal(err)
	}
	rep.Close()
	if got := tr.Find("cache-store"); got != "stored" {
		t.Errorf("trace after the body: cache-store=%q", got)
	}

	empty := fixed(answer{status: 204, headers: []string{"Cache-Control: max-age=60"}})
	if r := e.get(empty, "/empty"); r.get("Cache-Status") != "Outpost; fwd=uri-miss; fwd-status=204; ttl=60; stored" {
		t.Errorf("empty body: Cache-Status %q", r.get("Cache-Status"))
	}
}

func TestTraceSaysAnAbortedFillWasNotStored(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: "part", lieCL: 100})
	tr := &trace.Trace{}
	tr.Reset(time.Now())
	rep, err := e.c.Serve(e.originOf(context.Background(), o.fetch), request("GET", "/cut"), e.pol, tr)
	if err != nil {
		t.Fatal(err)
	}
	readReply(rep)
	if got := tr.Find("cache-store"); got != "not stored: body aborted" {
		t.Errorf("cache-store=%q", got)
	}
}

// TestRFC9211CollapsedWaiters: the requests that waited on another's fetch
// say collapsed when its response served them, collapsed=?0 when they
// had to ask the origin themselves (RFC 9211 section 2.6), with fwd.
func TestRFC9211CollapsedWaiters(t *testing.T) {
	count := func(rs []result, cs string) int {
		n := 0
		for _, r := range rs {
			if r.get("Cache-Status") == cs {
				n++
			}
		}
		return n
	}
	t.Run("served by the fill", func(t *testing.T) {
		e := newEnv(t)
		release := make(chan struct{})
		rs := e.wave(heldOrigin(release, answer{headers: []string{"Cache-Control: max-age=60"}, body: "b"}), release, "/c", 5)
		if n := count(rs, "Outpost; fwd=uri-miss; fwd-status=200; ttl=60"); n != 1 {
			t.Errorf("%d leaders, want 1", n)
		}
		if n := count(rs, "Outpost; fwd=uri-miss; fwd-status=200; collapsed") + count(rs, "Outpost; fwd=uri-miss; fwd-status=200; stored; collapsed"); n != 4 {
			t.Errorf("%d waiters say collapsed, want 4: %v", n, statuses(rs))
		}
	})
	t.Run("released to the origin", func(t *testing.T) {
		e := newEnv(t)
		release := make(chan struct{})
		rs := e.wave(heldOrigin(release, answer{headers: []string{"Cache-Control: private"}, body: "b"}), release, "/p", 5)
		if n := count(rs, "Outpost; fwd=bypass; fwd-status=200; collapsed=?0"); n != 4 {
			t.Errorf("%d waiters say collapsed=?0, want 4: %v", n, statuses(rs))
		}
	})
	t.Run("served by a collapsed revalidation", func(t *testing.T) {
		e := newEnv(t)
		release := make(chan struct{})
		o := newOrigin(func(req *httphead.Request, n int) answer {
			if n == 1 {
				return answer{headers: []string{"Cache-Control: max-age=10", "ETag: \"e\""}, body: "b"}
			}
			<-release
			return answer{status: 304, headers: []string{"Cache-Control: max-age=60"}}
		})
		e.get(o, "/r")
		e.waitFills()
		e.clock.Advance(time.Minute)
		rs := e.wave(o, release, "/r", 5)
		if n := count(rs, "Outpost; fwd=stale; fwd-status=304; ttl=60"); n != 1 {
			t.Errorf("%d leaders, want 1: %v", n, statuses(rs))
		}
		if n := count(rs, "Outpost; fwd=stale; fwd-status=304; ttl=60; collapsed"); n != 4 {
			t.Errorf("%d waiters say collapsed, want 4: %v", n, statuses(rs))
		}
	})
}

// TestCollapsedWaitersOfAFailedFetchServedStale: when the fetch they waited
// on fails, waiters served the stale object say so as any stale-if-error
// response does: not collapsed (nothing of the fetch was reused) and not a
// 304 they never saw.
func TestCollapsedWaitersOfAFailedFetchServedStale(t *testing.T) {
	e := newEnv(t)
	release := make(chan struct{})
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			return answer{headers: []string{"Cache-Control: max-age=10, stale-if-error=3600"}, body: "b"}
		}
		<-release
		return answer{err: errOriginDown}
	})
	e.get(o, "/f")
	e.waitFills()
	e.clock.Advance(time.Minute)
	for _, r := range e.wave(o, release, "/f", 5) {
		if cs := r.get("Cache-Status"); cs != "Outpost; hit; ttl=-50; detail=origin-error" || r.body != "b" {
			t.Errorf("Cache-Status %q, body %q", cs, r.body)
		}
	}
}

func statuses(rs []result) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.get("Cache-Status")
	}
	return out
}
