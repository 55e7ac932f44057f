package guard

import (
	"regexp"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

// newRequest builds a request head from "Name: value" lines.
func newRequest(method string, major, minor int, fields ...string) *httphead.Request {
	req := &httphead.Request{ProtoMajor: major, ProtoMinor: minor}
	req.SetLine([]byte(method), []byte("/path?q=1"), []byte("example.com"), []byte("https"))
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ": ")
		req.Header.AddString(name, value)
	}
	return req
}

var ja4hTests = []struct {
	name string
	req  *httphead.Request
	want string
}{
	{"browser request with cookies in two fields and a referer",
		newRequest("GET", 1, 1, "Host: example.com", "User-Agent: Mozilla/5.0", "Accept: text/html",
			"Accept-Language: en-US,en;q=0.9", "Referer: https://example.com/", "Cookie: b=2; a=1", "Cookie: c=3"),
		"ge11cr04enus_8ddaef5d77af_205830ca5b23_d0c269c2d82d"},
	{"curl-like request without cookies or language",
		newRequest("POST", 2, 0, "user-agent: curl/8", "accept: */*"),
		"po20nn020000_5594a17e7e7e_000000000000_000000000000"},
	{"names and pairs are sorted apart",
		newRequest("GET", 1, 1, "Host: example.com", "User-Agent: Mozilla/5.0", "Accept: text/html",
			"Accept-Language: en-US,en;q=0.9", "Cookie: a-b=2; a=1;"),
		"ge11cn04enus_8ddaef5d77af_474f0429a83d_6e14daf13c43"},
	{"no fields at all hashes to zeros", newRequest("HEAD", 1, 0), "he10nn000000_000000000000_000000000000_000000000000"},
	{"short language is padded", newRequest("GET", 1, 1, "Accept-Language: de;q=1"), "ge11nn01de00_" + hash12("Accept-Language") + "_000000000000_000000000000"},
}

func hash12(s string) string { return string(appendTruncatedHash(nil, []byte(s), false)) }

func TestJA4H(t *testing.T) {
	for _, tt := range ja4hTests {
		if got := string(AppendJA4H(nil, tt.req)); got != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, got, tt.want)
		}
	}
}

func TestJA4HAllocatesNothing(t *testing.T) {
	req := ja4hTests[0].req
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = AppendJA4H(buf[:0], req) }); n != 0 {
		t.Fatalf("%v allocations per JA4H", n)
	}
}

var ja4hHashes = regexp.MustCompile(`^(_[0-9a-f]{12}){3}$`)

func FuzzJA4H(f *testing.F) {
	for _, tt := range ja4hTests {
		f.Add(string(tt.req.Method), string(tt.req.Header.AppendTo(nil)))
	}
	f.Add("X", "Cookie: ;;; =; a==\r\nAccept-Language: ---,\r\n")
	f.Fuzz(func(t *testing.T, method, fields string) {
		req := &httphead.Request{ProtoMajor: 1, ProtoMinor: 1}
		req.SetLine([]byte(method), []byte("/"), nil, nil)
		for line := range strings.SplitSeq(fields, "\r\n") {
			name, value, _ := strings.Cut(line, ":")
			req.Header.AddString(name, strings.TrimSpace(value))
		}
		// the method may hold "_" (it is a token character), so check the
		// shape from the end: a, then three 12-digit hashes
		got := string(AppendJA4H(nil, req))
		a, hashes := got[:max(len(got)-39, 0)], got[max(len(got)-39, 0):]
		if len(a) < 10 || len(a) > 12 || !ja4hHashes.MatchString(hashes) {
			t.Fatalf("malformed JA4H %q", got)
		}
	})
}
