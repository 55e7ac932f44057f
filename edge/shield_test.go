package edge

import "testing"

// A request passed through a node when its X-Outpost-Hops names it; four
// names are too many (a loop among nodes that do not see themselves).
func TestPassedThrough(t *testing.T) {
	for _, tc := range []struct {
		hops string
		want bool
	}{
		{"", false},
		{"edge1", false},
		{"edge1, shield1", true},
		{"shield1", true},
		{"shield10, xshield1", false},
		{" , edge1,shield1 ", true},
		{"a, b, c", false},
		{"a, b, c, d", true},
	} {
		if got := passedThrough([]byte(tc.hops), "shield1"); got != tc.want {
			t.Errorf("passedThrough(%q, shield1) = %v, want %v", tc.hops, got, tc.want)
		}
	}
	if got := appendHop([]byte("edge1"), "shield1"); got != "edge1, shield1" {
		t.Errorf("appendHop = %q", got)
	}
}
