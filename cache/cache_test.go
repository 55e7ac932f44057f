package cache

import (
	"testing"
	"time"
)

func TestMissThenHit(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Content-Type: text/plain"}, body: "hello"})
	r1 := e.get(o, "/a")
	if r1.status != 200 || r1.body != "hello" || r1.code != StatusMiss {
		t.Fatalf("first: %+v", r1)
	}
	if got := r1.get("Cache-Status"); got != "Outpost; fwd=uri-miss; fwd-status=200; ttl=60" {
		t.Errorf("miss Cache-Status = %q", got)
	}
	e.clock.Advance(10 * time.Second)
	r2 := e.get(o, "/a")
	if r2.body != "hello" || r2.code != StatusHit {
		t.Fatalf("second: %+v", r2)
	}
	if got := r2.get("Cache-Status"); got != "Outpost; hit; ttl=50" {
		t.Errorf("hit Cache-Status = %q", got)
	}
	if got := r2.get("Age"); got != "10" {
		t.Errorf("Age = %q, want 10", got)
	}
	if o.count.Load() != 1 {
		t.Errorf("origin saw %d requests, want 1", o.count.Load())
	}
}
