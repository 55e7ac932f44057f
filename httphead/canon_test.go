package httphead

import (
	"testing"
)

// The normalisation of RFC 3986 section 6.2.2 and 5.2.4 under each path
// policy: what routing, rules, the cache key and purges see.
func TestSetLineNormalisesPath(t *testing.T) {
	keep := PathPolicy{KeepSlashes: true}
	decode := PathPolicy{EncodedSlash: SlashDecode}
	reject := PathPolicy{EncodedSlash: SlashReject}
	for _, tc := range []struct {
		target string
		pol    PathPolicy
		path   string
		bad    string
	}{
		{"/", PathPolicy{}, "/", ""},
		{"/a/b", PathPolicy{}, "/a/b", ""},
		{"//admin", PathPolicy{}, "/admin", ""},
		{"//admin", keep, "//admin", ""},
		{"/a//b/", PathPolicy{}, "/a/b/", ""},
		{"/%61dmin", PathPolicy{}, "/admin", ""},
		{"/a/../admin", PathPolicy{}, "/admin", ""},
		{"/x/%2e%2e/internal", PathPolicy{}, "/internal", ""},
		{"/x/%2E%2e/internal?q=/../", PathPolicy{}, "/internal", ""},
		{"/x/.%2e/", PathPolicy{}, "/", ""},
		{"/../../etc", PathPolicy{}, "/etc", ""},
		{"/a/b/..", PathPolicy{}, "/a/", ""},
		{"/a/b/.", PathPolicy{}, "/a/b/", ""},
		{"/a/./b", PathPolicy{}, "/a/b", ""},
		{"/a//../b", keep, "/a/b", ""},
		{"/%7euser/%3c%3e", PathPolicy{}, "/~user/%3C%3E", ""},
		{"/a%2fb", PathPolicy{}, "/a%2Fb", ""},
		{"/pub%2F..%2Fadmin", PathPolicy{}, "/pub%2F..%2Fadmin", ""},
		{"/pub%2F..%2Fadmin", decode, "/admin", ""},
		{"/a%2fb", reject, "", "encoded slash in path"},
		{"/a%zz", PathPolicy{}, "", "invalid percent-encoding in path"},
		{"/a%2", PathPolicy{}, "", "invalid percent-encoding in path"},
		{`/a\..\admin`, PathPolicy{}, "", "backslash in path"},
		{"/..;/admin", PathPolicy{}, "", "dot-segment with parameters in path"},
		{"/a/.;x/b", PathPolicy{}, "", "dot-segment with parameters in path"},
		{"http://h.example/a/../b", PathPolicy{}, "/b", ""},
		{"*", PathPolicy{}, "*", ""},
	} {
		var r Request
		r.Paths = tc.pol
		r.SetLine([]byte("GET"), []byte(tc.target), []byte("h.example"), []byte("http"))
		if tc.bad != "" {
			if r.invalid != tc.bad {
				t.Errorf("%q: refused for %q, want %q", tc.target, r.invalid, tc.bad)
			}
			continue
		}
		if r.invalid != "" || string(r.Path) != tc.path || string(r.Target) != tc.target {
			t.Errorf("%q: path %q target %q (%s), want %q", tc.target, r.Path, r.Target, r.invalid, tc.path)
		}
	}
}

func TestSetLineCanonicalisesHost(t *testing.T) {
	for _, tc := range []struct{ host, scheme, method, want string }{
		{"Shop.Example", "http", "GET", "shop.example"},
		{"shop.example.", "http", "GET", "shop.example"},
		{"shop.example.:443", "https", "GET", "shop.example"},
		{"shop.example:80", "http", "GET", "shop.example"},
		{"shop.example:80", "https", "GET", "shop.example:80"},
		{"shop.example.:8080", "http", "GET", "shop.example:8080"},
		{"shop.example:", "http", "GET", "shop.example"},
		{"[::1]:443", "https", "GET", "[::1]"},
		{"[::1]", "http", "GET", "[::1]"},
		{"a.example:443", "http", "CONNECT", "a.example:443"},
	} {
		var r Request
		r.SetLine([]byte(tc.method), []byte("/"), []byte(tc.host), []byte(tc.scheme))
		if string(r.Host) != tc.want {
			t.Errorf("%s %q: host %q, want %q", tc.scheme, tc.host, r.Host, tc.want)
		}
	}
}

func TestForwardTarget(t *testing.T) {
	var r Request
	r.SetLine([]byte("GET"), []byte("/a/%2e%2e/b?x=/../"), []byte("h"), []byte("http"))
	if got := string(r.ForwardTarget(nil)); got != "/b?x=/../" {
		t.Errorf("normalised: %q", got)
	}
	r.Paths.ForwardAsSent = true
	if got := string(r.ForwardTarget(nil)); got != "/a/%2e%2e/b?x=/../" {
		t.Errorf("as sent: %q", got)
	}
}

func TestSetLineAllocatesNothingWhenReused(t *testing.T) {
	var r Request
	m, tg, h, s := []byte("GET"), []byte("/a/./b/../c%7e?q=1"), []byte("Shop.Example."), []byte("https")
	r.SetLine(m, tg, h, s)
	if n := testing.AllocsPerRun(100, func() { r.SetLine(m, tg, h, s) }); n != 0 {
		t.Errorf("%v allocations per SetLine", n)
	}
}

func FuzzNormalizePath(f *testing.F) {
	for _, s := range []string{"/", "//a/../b", "/%2e%2E/x", "/a%2Fb/..", "/..;/x", "/a/b/./../c/"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, p string, mode uint8) {
		if len(p) == 0 || p[0] != '/' {
			return
		}
		pol := PathPolicy{KeepSlashes: mode&4 != 0, EncodedSlash: EncodedSlash(mode % 3)}
		out, bad := normalizePath([]byte(p), pol)
		if bad != "" {
			return
		}
		if len(out) == 0 || out[0] != '/' {
			t.Fatalf("%q -> %q", p, out)
		}
		again, bad := normalizePath(append([]byte(nil), out...), pol)
		if bad != "" || string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q -> %q (%s)", p, out, again, bad)
		}
		for _, seg := range splitSegments(out) {
			if seg == "." || seg == ".." {
				t.Fatalf("%q -> %q keeps a dot-segment", p, out)
			}
		}
	})
}

func splitSegments(p []byte) []string {
	var segs []string
	start := 1
	for i := 1; i <= len(p); i++ {
		if i == len(p) || p[i] == '/' {
			segs = append(segs, string(p[start:i]))
			start = i + 1
		}
	}
	return segs
}
