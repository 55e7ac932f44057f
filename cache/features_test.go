package cache

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

func TestVaryKeepsOneVariantPerRequestValue(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding, Accept-Language"},
			body: "enc=" + req.Header.Get("Accept-Encoding") + " lang=" + req.Header.Get("Accept-Language")}
	})
	gz := []string{"Accept-Encoding: gzip", "Accept-Language: en"}
	br := []string{"Accept-Encoding: br", "Accept-Language: en"}
	if r := e.get(o, "/v", gz...); r.body != "enc=gzip lang=en" || r.code != StatusMiss {
		t.Fatalf("gzip miss: %v %q", r.code, r.body)
	}
	r := e.get(o, "/v", br...)
	if r.body != "enc=br lang=en" || !strings.Contains(r.get("Cache-Status"), "fwd=vary-miss") {
		t.Fatalf("br: %q %q", r.body, r.get("Cache-Status"))
	}
	for _, tc := range []struct {
		hdrs []string
		want string
	}{{gz, "enc=gzip lang=en"}, {br, "enc=br lang=en"}} {
		if r := e.get(o, "/v", tc.hdrs...); r.code != StatusHit || r.body != tc.want {
			t.Errorf("variant %v: %v %q", tc.hdrs, r.code, r.body)
		}
	}
	if r := e.get(o, "/v"); r.code == StatusHit {
		t.Errorf("request without the varying fields hit %q", r.body)
	}
	if o.count.Load() != 3 {
		t.Errorf("origin saw %d requests, want 3", o.count.Load())
	}
}

func TestAcceptEncodingIsNormalised(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept-Encoding"},
			body: "coding=" + req.Header.Get("Accept-Encoding")}
	})
	tests := []struct{ ae, want string }{
		{"gzip, deflate", "coding=gzip"},
		{"deflate, gzip;q=0.5", "coding=gzip"},
		{"br, gzip", "coding=br"},
		{"gzip, br;q=0", "coding=gzip"},
		{"gzip;q=0.000, br;q=0.", "coding="},
		{"identity", "coding="},
		{"*", "coding=br"},
		{"x-gzip", "coding=gzip"},
	}
	for _, tt := range tests {
		if r := e.get(o, "/ae", "Accept-Encoding: "+tt.ae); r.body != tt.want {
			t.Errorf("Accept-Encoding %q: got %q, want %q", tt.ae, r.body, tt.want)
		}
		e.waitFills()
	}
	if n := o.count.Load(); n != 3 {
		t.Errorf("origin saw %d requests, want 3 (br, gzip, none)", n)
	}
	e.pol.KeepAcceptEncoding = true
	if r := e.get(o, "/ae2", "Accept-Encoding: gzip, deflate"); r.body != "coding=gzip, deflate" {
		t.Errorf("KeepAcceptEncoding: got %q", r.body)
	}
}

func TestVaryStarIsNeverServedFromCache(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Vary: *"}, body: "b"})
	e.get(o, "/star")
	if r := e.get(o, "/star"); r.code == StatusHit {
		t.Fatal("Vary: * served from cache")
	}
}

func TestVaryPurgeThroughMarker(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "Vary: Accept", "ETag: \"e\""}, body: "b"})
	e.get(o, "/pv", "Accept: a")
	if !e.c.PurgeURL(e.pol, getURL("https", "example.com", "/pv"), true) {
		t.Fatal("soft purge found nothing")
	}
	if r := e.get(o, "/pv", "Accept: a"); r.code == StatusHit {
		t.Fatal("variant fresh after soft purge of its URL")
	}
	e.get(o, "/pv", "Accept: a")
	if !e.c.PurgeURL(e.pol, getURL("https", "example.com", "/pv"), false) {
		t.Fatal("purge found nothing")
	}
	if r := e.get(o, "/pv", "Accept: a"); r.code != StatusMiss {
		t.Fatalf("after purge: %v", r.code)
	}
}

func TestRangeFromCachedFullResponse(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "ETag: \"r\"", "Last-Modified: " + httpDate(epoch0)}, body: "0123456789"})
	e.get(o, "/range")
	tests := []struct {
		name   string
		hdrs   []string
		status int
		body   string
		cr     string
	}{
		{"first bytes", []string{"Range: bytes=0-3"}, 206, "0123", "bytes 0-3/10"},
		{"open ended", []string{"Range: bytes=7-"}, 206, "789", "bytes 7-9/10"},
		{"suffix", []string{"Range: bytes=-3"}, 206, "789", "bytes 7-9/10"},
		{"suffix longer than body", []string{"Range: bytes=-30"}, 206, "0123456789", "bytes 0-9/10"},
		{"end past size", []string{"Range: bytes=8-100"}, 206, "89", "bytes 8-9/10"},
		{"unsatisfiable", []string{"Range: bytes=10-"}, 416, "", "bytes */10"},
		{"zero suffix", []string{"Range: bytes=-0"}, 416, "", "bytes */10"},
		{"several ranges overlapping coalesce", []string{"Range: bytes=0-3,2-4"}, 206, "01234", "bytes 0-4/10"},
		{"other unit ignored", []string{"Range: items=0-1"}, 200, "0123456789", ""},
		{"garbage ignored", []string{"Range: bytes=x-y"}, 200, "0123456789", ""},
		{"if-range etag matches", []string{"Range: bytes=0-0", `If-Range: "r"`}, 206, "0", "bytes 0-0/10"},
		{"if-range etag differs", []string{"Range: bytes=0-0", `If-Range: "other"`}, 200, "0123456789", ""},
		{"if-range date matches", []string{"Range: bytes=0-0", "If-Range: " + httpDate(epoch0)}, 206, "0", "bytes 0-0/10"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(o, "/range", tt.hdrs...)
			if r.status != tt.status || r.body != tt.body || r.get("Content-Range") != tt.cr {
				t.Errorf("got %d %q %q, want %d %q %q", r.status, r.body, r.get("Content-Range"), tt.status, tt.body, tt.cr)
			}
		})
	}
	if o.count.Load() != 1 {
		t.Errorf("origin saw %d requests", o.count.Load())
	}
}

// A Range miss asks the origin for the aligned segments; an origin that
// ignores Range sends the whole body, which is stored whole.
func TestRangeMissAsksForSegmentsAndStoresAWholeAnswer(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: "0123456789"})
	r := e.get(o, "/rm", "Range: bytes=2-4")
	if r.status != 206 || r.body != "234" {
		t.Fatalf("got %d %q", r.status, r.body)
	}
	if got := o.last().Header.Get("Range"); got != "bytes=0-1048575" {
		t.Errorf("Range sent to the origin: %q, want the first segment", got)
	}
	e.waitFills()
	if r := e.get(o, "/rm"); r.code != StatusHit || r.body != "0123456789" {
		t.Fatalf("whole object not stored: %v %q", r.code, r.body)
	}
}

func TestClientConditionalAnsweredFromCache(t *testing.T) {
	e := newEnv(t)
	lm := httpDate(epoch0.Add(-time.Hour))
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "ETag: W/\"c\"", "Last-Modified: " + lm}, body: "b"})
	e.get(o, "/cond")
	tests := []struct {
		name   string
		hdrs   []string
		status int
	}{
		{"if-none-match weak match", []string{`If-None-Match: "c"`}, 304},
		{"if-none-match list", []string{`If-None-Match: "a", W/"c"`}, 304},
		{"if-none-match star", []string{`If-None-Match: *`}, 304},
		{"if-none-match differs", []string{`If-None-Match: "z"`}, 200},
		{"if-modified-since same", []string{"If-Modified-Since: " + lm}, 304},
		{"if-modified-since earlier", []string{"If-Modified-Since: " + httpDate(epoch0.Add(-2*time.Hour))}, 200},
		{"if-none-match wins over ims", []string{`If-None-Match: "z"`, "If-Modified-Since: " + lm}, 200},
		{"garbage date", []string{"If-Modified-Since: yesterday"}, 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.get(o, "/cond", tt.hdrs...)
			if r.status != tt.status || r.code != StatusHit {
				t.Errorf("got %d %v, want %d", r.status, r.code, tt.status)
			}
			if tt.status == 304 && (r.body != "" || r.get("ETag") != `W/"c"`) {
				t.Errorf("304 with body %q or without ETag %q", r.body, r.get("ETag"))
			}
		})
	}
}

func TestClientConditionalAnsweredOnMiss(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60", "ETag: \"m\""}, body: "body"})
	r := e.get(o, "/cm", `If-None-Match: "m"`)
	if r.status != 304 || r.body != "" || r.code != StatusMiss {
		t.Fatalf("got %d %v %q", r.status, r.code, r.body)
	}
	if o.last().Header.Has("If-None-Match") {
		t.Error("the client's validator went to the origin on a fill")
	}
	e.waitFills()
	if r := e.get(o, "/cm"); r.code != StatusHit || r.body != "body" {
		t.Fatalf("not stored: %v %q", r.code, r.body)
	}
}

func TestHeadIsServedFromCachedGet(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: "hello"})
	r := e.do(o, "HEAD", "/h")
	if r.body != "" || o.last().Method == nil || string(o.last().Method) != "GET" {
		t.Fatalf("HEAD miss: body %q, origin method %q", r.body, o.last().Method)
	}
	e.waitFills()
	rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("HEAD", "/h"), e.pol, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != StatusHit || rep.Head.ContentLength != 5 || rep.Body != nil || rep.BodyBytes != nil {
		t.Errorf("HEAD hit: %v CL %d body %v", rep.Status, rep.Head.ContentLength, rep.Body != nil || rep.BodyBytes != nil)
	}
	rep.Close()
}

func TestEdgeFieldsAreRemoved(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=5", "CDN-Cache-Control: max-age=600",
		"Surrogate-Control: max-age=100", "Surrogate-Key: a b  c", "Connection: x-hop", "X-Hop: 1"}, body: "b"})
	for _, r := range []result{e.get(o, "/edge"), e.get(o, "/edge")} {
		for _, f := range []string{"CDN-Cache-Control", "Surrogate-Control", "Surrogate-Key", "X-Hop"} {
			if r.head.Has(f) {
				t.Errorf("%v reply carries %s", r.code, f)
			}
		}
		if r.get("Cache-Control") != "max-age=5" {
			t.Errorf("Cache-Control lost: %q", r.get("Cache-Control"))
		}
	}
	var tags []string
	e.store.Range(func(key string, meta []byte) bool {
		for t := range EachTag(meta) {
			tags = append(tags, string(t))
		}
		return true
	})
	if !slices.Equal(tags, []string{"a", "b", "c"}) {
		t.Errorf("Tags = %q", tags)
	}
}

func TestRevalidationKeepsEdgeDirectives(t *testing.T) {
	e := newEnv(t)
	o := newOrigin(func(req *httphead.Request, n int) answer {
		if n == 1 {
			return answer{headers: []string{"Cache-Control: no-store", "CDN-Cache-Control: max-age=10", "ETag: \"e\""}, body: "b"}
		}
		return answer{status: 304, headers: []string{"Cache-Control: no-store"}}
	})
	e.get(o, "/re")
	e.clock.Advance(time.Minute)
	if r := e.get(o, "/re"); r.code != StatusRevalidated {
		t.Fatalf("got %v", r.code)
	}
	e.clock.Advance(5 * time.Second)
	if r := e.get(o, "/re"); r.code != StatusHit {
		t.Fatalf("304 lost the edge lifetime: %v %q", r.code, r.get("Cache-Status"))
	}
}

func TestKeySpec(t *testing.T) {
	tests := []struct {
		name   string
		spec   KeySpec
		a, b   string
		hdrA   []string
		hdrB   []string
		shared bool
	}{
		{"query all distinguishes", KeySpec{}, "/k?a=1", "/k?a=2", nil, nil, false},
		{"query none ignores", KeySpec{Query: QueryNone}, "/k?a=1", "/k?a=2", nil, nil, true},
		{"query list keeps named", KeySpec{Query: QueryList, QueryParams: []string{"a", "c"}}, "/k?c=3&b=1&a=1", "/k?a=1&b=2&c=3", nil, nil, true},
		{"query list distinguishes named", KeySpec{Query: QueryList, QueryParams: []string{"a"}}, "/k?a=1", "/k?a=2", nil, nil, false},
		{"header keyed", KeySpec{Headers: []string{"X-Tenant"}}, "/k", "/k", []string{"X-Tenant: a"}, []string{"X-Tenant: b"}, false},
		{"header absent vs empty", KeySpec{Headers: []string{"X-Tenant"}}, "/k", "/k", nil, []string{"X-Tenant: "}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ka := string(appendKey(nil, request("GET", tt.a, tt.hdrA...), &tt.spec))
			kb := string(appendKey(nil, request("GET", tt.b, tt.hdrB...), &tt.spec))
			if (ka == kb) != tt.shared {
				t.Errorf("keys %q and %q: shared = %v, want %v", ka, kb, ka == kb, tt.shared)
			}
		})
	}
	for _, h := range []string{"example.com:443", "example.com.", "EXAMPLE.COM"} {
		req := request("GET", "/p")
		req.SetLine([]byte("GET"), []byte("/p"), []byte(h), []byte("https"))
		if k := string(appendKey(nil, req, &KeySpec{})); k != "https://example.com/p" {
			t.Errorf("host %q keys as %q", h, k)
		}
	}
	req := request("GET", "/p")
	req.SetLine([]byte("GET"), []byte("/p"), []byte("example.com:8443"), []byte("https"))
	if k := string(appendKey(nil, req, &KeySpec{})); k != "https://example.com:8443/p" {
		t.Errorf("other port keys as %q", k)
	}
	host := KeySpec{IgnoreScheme: true, IgnoreHost: true}
	if k := string(appendKey(nil, request("GET", "/p?q"), &host)); k != "/p?q" {
		t.Errorf("key without scheme and host = %q", k)
	}
}

func TestRouteSettings(t *testing.T) {
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: "0123456789"})
	tests := []struct {
		name string
		pol  Policy
		code Status
	}{
		{"disabled", Policy{}, StatusBypass},
		{"method not listed", Policy{Enabled: true, Methods: []string{"HEAD"}}, StatusBypass},
		{"too large then hit-for-pass", Policy{Enabled: true, MaxObjectSize: 5}, StatusPass},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.pol = &tt.pol
			e.get(o, "/rs")
			r := e.get(o, "/rs")
			if r.code != tt.code || r.body != "0123456789" {
				t.Errorf("got %v %q (%q)", r.code, r.body, r.get("Cache-Status"))
			}
		})
	}
}

func TestOriginErrorWithoutStaleIsAnError(t *testing.T) {
	e := newEnv(t)
	r := e.get(fixed(answer{err: errOriginDown}), "/down")
	if r.status != -1 || !errors.Is(r.readErr, errOriginDown) {
		t.Fatalf("got %d %v", r.status, r.readErr)
	}
}

// getURL is the canonical GET of scheme://host+target, as purges build it.
func getURL(scheme, host, target string) *httphead.Request {
	var req httphead.Request
	req.SetLine([]byte("GET"), []byte(target), []byte(host), []byte(scheme))
	return &req
}
