package h2

import (
	"strconv"
	"strings"
	"testing"

	"golang.org/x/net/http2/hpack"
)

// RFC 9113 section 8.2: field names in lowercase, no connection-specific
// fields, TE only "trailers", values without CR, LF, NUL or whitespace at
// either end.
func TestRFC9113Section8_2FieldValidity(t *testing.T) {
	cases := []struct {
		name, value string
		ok          bool
	}{
		{"accept", "*/*", true},
		{"te", "trailers", true},
		{"x-a", "b c", true},
		{"Accept", "*/*", false},
		{"connection", "keep-alive", false},
		{"keep-alive", "5", false},
		{"proxy-connection", "x", false},
		{"transfer-encoding", "chunked", false},
		{"upgrade", "websocket", false},
		{"te", "gzip", false},
		{"x-a", "b\r\nx-b: c", false},
		{"x-a", "b\x00", false},
		{"x-a", " b", false},
		{"x-a", "b\t", false},
		{"x a", "b", false},
		{"", "b", false},
	}
	for _, tc := range cases {
		if got := checkField(tc.name, tc.value) == ""; got != tc.ok {
			t.Errorf("%q: %q: valid %v, want %v", tc.name, tc.value, got, tc.ok)
		}
	}
}

// The response encoding is plain HPACK: any decoder reads it back, names
// lowercased, with no dynamic table to keep in step.
func TestResponseHeadDecodesWithHPACK(t *testing.T) {
	var b, lower []byte
	b = appendStatus(b, 200)
	b = appendStatus(b, 418)
	long := strings.Repeat("v", 300)
	fields := [][2]string{{"Content-Type", "text/plain"}, {"X-Custom-Field", long}, {"www-authenticate", ""}, {strings.Repeat("X", 200), "y"}}
	for _, f := range fields {
		b = appendField(b, []byte(f[0]), []byte(f[1]), &lower)
	}
	got, err := hpack.NewDecoder(4096, nil).DecodeFull(b)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{":status=200", ":status=418", "content-type=text/plain", "x-custom-field=" + long, "www-authenticate=", strings.Repeat("x", 200) + "=y"}
	if len(got) != len(want) {
		t.Fatalf("%d fields, want %d: %v", len(got), len(want), got)
	}
	for i, f := range got {
		if f.Name+"="+f.Value != want[i] {
			t.Errorf("field %d: %s=%s, want %s", i, f.Name, f.Value, want[i])
		}
	}
	var d [30]byte
	for _, n := range []int64{0, 9, 10, 1024, 1 << 40} {
		b := appendDecimal(d[:0], n)
		if got := string(b[1:]); int(b[0]) != len(got) || got != strconv.FormatInt(n, 10) {
			t.Errorf("appendDecimal(%d) = %q", n, b)
		}
	}
}
