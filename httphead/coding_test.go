package httphead

import "testing"

// RFC 9110 section 12.5.3: the coding with the highest weight wins; "*"
// covers the codings not named; q=0 refuses.
func TestPreferredCodingFollowsRFC9110Section12_5_3Weights(t *testing.T) {
	tests := []struct {
		lines []string
		want  string
	}{
		{nil, ""},
		{[]string{"identity"}, ""},
		{[]string{"gzip, deflate, br, zstd"}, "br"},
		{[]string{"gzip;q=1, br;q=0.5"}, "gzip"},
		{[]string{"zstd, gzip;q=0.9"}, "zstd"},
		{[]string{"br;q=0.1, identity"}, "br"},
		{[]string{"br;q=0, gzip"}, "gzip"},
		{[]string{"gzip;q=0.000, br;q=0."}, ""},
		{[]string{"*"}, "br"},
		{[]string{"*;q=0.5, zstd"}, "zstd"},
		{[]string{"*;q=0"}, ""},
		{[]string{"x-gzip"}, "gzip"},
		{[]string{"gzip;q=0.8", "zstd;q=0.9"}, "zstd"},
		{[]string{"BR ; Q=1.000 , GZIP"}, "br"},
		{[]string{"br;q=2"}, ""},
	}
	for _, tt := range tests {
		var h Header
		for _, l := range tt.lines {
			h.AddString("Accept-Encoding", l)
		}
		if got := PreferredCoding(&h); got != tt.want {
			t.Errorf("%q: got %q, want %q", tt.lines, got, tt.want)
		}
	}
	var h Header
	h.AddString("Accept-Encoding", "gzip, deflate, br;q=0.9, zstd")
	if n := testing.AllocsPerRun(100, func() { PreferredCoding(&h) }); n != 0 {
		t.Errorf("PreferredCoding allocates %v times", n)
	}
}
