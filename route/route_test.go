package route

import (
	"testing"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
)

func request(method, target, host, scheme string, fields ...string) *httphead.Request {
	var r httphead.Request
	r.SetLine([]byte(method), []byte(target), []byte(host), []byte(scheme))
	for i := 0; i+1 < len(fields); i += 2 {
		r.Header.AddString(fields[i], fields[i+1])
	}
	return &r
}

// Every spelling of a host or path that names the same resource matches
// the same route: a rule cannot be stepped around with escapes,
// dot-segments, doubled slashes, case, a trailing dot or a default port.
func TestMatchersSeeTheCanonicalRequest(t *testing.T) {
	admin := Compile(&config.Match{Hosts: []string{"shop.example"}, PathPrefix: "/admin"})
	for _, tc := range []struct {
		target, host, scheme string
		want                 bool
	}{
		{"/admin/x", "shop.example", "http", true},
		{"//admin/x", "shop.example", "http", true},
		{"/%61dmin", "shop.example", "http", true},
		{"/a/../admin", "shop.example", "http", true},
		{"/x/%2e%2e/admin", "shop.example", "http", true},
		{"/admin", "Shop.Example.", "http", true},
		{"/admin", "shop.example:80", "http", true},
		{"/admin", "shop.example.:443", "https", true},
		{"/admin", "shop.example:8080", "http", true},
		{"/public", "shop.example", "http", false},
		{"/admin", "other.example", "http", false},
		{"/x%2F..%2Fadmin", "shop.example", "http", false},
	} {
		if got := admin.MatchURL(request("GET", tc.target, tc.host, tc.scheme)); got != tc.want {
			t.Errorf("%s %s%s: %v, want %v", tc.scheme, tc.host, tc.target, got, tc.want)
		}
	}
}

func TestMatchRequestChecksMethodsAndHeaders(t *testing.T) {
	m := Compile(&config.Match{Hosts: []string{"*.example"}, Methods: []string{"GET"},
		Headers: map[string]string{"X-Canary": "1", "X-Any": "*"}})
	if !m.MatchRequest(request("GET", "/", "a.example", "http", "X-Canary", "1", "X-Any", "z")) {
		t.Error("a matching request did not match")
	}
	for _, r := range []*httphead.Request{
		request("POST", "/", "a.example", "http", "X-Canary", "1", "X-Any", "z"),
		request("GET", "/", "a.example", "http", "X-Canary", "2", "X-Any", "z"),
		request("GET", "/", "a.example", "http", "X-Canary", "1"),
		request("GET", "/", "example", "http", "X-Canary", "1", "X-Any", "z"),
	} {
		if m.MatchRequest(r) {
			t.Errorf("%s %s %v matched", r.Method, r.Host, r.Header.Len())
		}
	}
	req := request("GET", "/", "a.example", "http", "X-Canary", "1", "X-Any", "z")
	if n := testing.AllocsPerRun(100, func() { m.MatchRequest(req) }); n != 0 {
		t.Errorf("%v allocations per match", n)
	}
}
