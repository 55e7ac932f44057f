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
