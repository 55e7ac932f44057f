package cache

import "testing"

// TestRFC9111Section3_1ContentRangeOn200IsStoredAndRelayed: a cache stores
// and forwards every end-to-end field but those section 3.1 names
// (hop-by-hop fields and the like); Content-Range on a 200 is not one of
// them, whatever it means there.
func TestRFC9111Section3_1ContentRangeOn200IsStoredAndRelayed(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Content-Range: bytes 0-3/8"}, body: "abcd"})
	for i, want := range []Status{StatusMiss, StatusHit} {
		r := e.get(o, "/cr")
		if r.code != want || r.get("Content-Range") != "bytes 0-3/8" {
			t.Errorf("request %d: %v, Content-Range %q", i, r.code, r.get("Content-Range"))
		}
		e.waitFills()
	}
	// A range the cache serves from it carries its own Content-Range only.
	r := e.get(o, "/cr", "Range: bytes=1-2")
	if r.status != 206 || r.head.Count("Content-Range") != 1 || r.get("Content-Range") != "bytes 1-2/4" || r.body != "bc" {
		t.Errorf("range: %d %q (%d lines) %q", r.status, r.get("Content-Range"), r.head.Count("Content-Range"), r.body)
	}
}

// TestRFC9111Section5_2_2_7PrivateFieldsReachTheirOwnUser: the fields that
// private= and no-cache= (section 5.2.2.4) name are kept out of the stored
// copy, not out of the response they came in: the client whose request
// fetched it gets them, and the upstream caches' Cache-Status too.
func TestRFC9111Section5_2_2_7PrivateFieldsReachTheirOwnUser(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{`Cache-Control: max-age=60, private="X-User", no-cache="X-Token"`,
		"X-User: alice", "X-Token: t", "Cache-Status: upstream; fwd=uri-miss"}, body: "b"})
	r := e.get(o, "/own")
	if r.get("X-User") != "alice" || r.get("X-Token") != "t" || r.head.Count("Cache-Status") != 2 || r.get("Cache-Status") != "upstream; fwd=uri-miss" {
		t.Errorf("fill: X-User %q X-Token %q Cache-Status %q (%d lines)", r.get("X-User"), r.get("X-Token"), r.get("Cache-Status"), r.head.Count("Cache-Status"))
	}
	e.waitFills()
	if r := e.get(o, "/own"); r.code != StatusHit || r.get("X-User") != "" || r.get("X-Token") != "" || r.head.Count("Cache-Status") != 1 {
		t.Errorf("hit: %v X-User %q X-Token %q Cache-Status %d lines", r.code, r.get("X-User"), r.get("X-Token"), r.head.Count("Cache-Status"))
	}
}
