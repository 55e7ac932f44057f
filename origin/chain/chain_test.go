package chain

import (
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

// RFC 9211 section 2.8: one detail per member; the hop joins the cache's.
func TestMarkCacheStatusAddsTheHopToThisCachesMember(t *testing.T) {
	for _, tt := range []struct {
		in   []string
		want string
	}{
		{[]string{"Outpost; fwd=uri-miss; fwd-status=200"}, `Outpost; fwd=uri-miss; fwd-status=200; detail="origin=archive"`},
		{[]string{"Outpost; fwd=uri-miss; detail=no-store; fwd-status=200"}, `Outpost; fwd=uri-miss; fwd-status=200; detail="no-store origin=archive"`},
		{[]string{"CDN; hit", "Outpost; hit"}, `Outpost; hit; detail="origin=archive"`},
		{[]string{"CDN; hit, Outpost; hit"}, `CDN; hit, Outpost; hit; detail="origin=archive"`},
	} {
		var h httphead.Header
		for _, v := range tt.in {
			h.AddString("Cache-Status", v)
		}
		MarkCacheStatus(&h, "archive")
		var last string
		n := 0
		h.Values("Cache-Status", func(v []byte) bool { last = string(v); n++; return true })
		if last != tt.want || n != len(tt.in) {
			t.Errorf("%q: got %q (%d fields), want %q", tt.in, last, n, tt.want)
		}
	}
	var none httphead.Header
	MarkCacheStatus(&none, "archive")
	if none.Has("Cache-Status") {
		t.Error("a response without Cache-Status got one")
	}
}
