package cache

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

func FuzzParseRange(f *testing.F) {
	for _, s := range []string{"bytes=0-3", "bytes=-3", "bytes=7-", "bytes=10-", "bytes=-0", "bytes=0-1,3-4",
		"items=0-1", "bytes=x-y", "bytes=99999999999999999999999-", "bytes= 1 - 2", "BYTES=1-2", "bytes=5-2", "bytes=0-1,1-2,-3", "bytes=2-3,0-0,1-1"} {
		f.Add(s, int64(10))
	}
	f.Fuzz(func(t *testing.T, v string, size int64) {
		if size < 0 {
			size = -size
		}
		rs, _ := parseRanges([]byte(v), size)
		for i, r := range rs {
			if r.start < 0 || r.start >= r.end || r.end > size {
				t.Fatalf("parseRanges(%q, %d) = %v outside the body", v, size, rs)
			}
			for _, o := range rs[i+1:] {
				if r.start <= o.end && o.start <= r.end {
					t.Fatalf("parseRanges(%q, %d) = %v overlap", v, size, rs)
				}
			}
		}
		start, end, ok := parseRange([]byte(v), size)
		if !ok || start < 0 {
			return
		}
		if start > end || end >= size {
			t.Fatalf("parseRange(%q, %d) = %d-%d outside the body", v, size, start, end)
		}
	})
}

func FuzzDecodeMeta(f *testing.F) {
	m := meta{kind: kindObject, status: 200, lifetime: time.Minute, headers: []byte("A: b\r\n"), tags: []byte("x y"), vary: []byte("Accept")}
	f.Add(m.encode(nil))
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{'O', 1}, 50))
	f.Fuzz(func(t *testing.T, b []byte) {
		var m meta
		if decodeMeta(b, &m) != nil {
			return
		}
		if got := m.encode(nil); !bytes.Equal(got, b) {
			t.Fatalf("decode/encode does not round-trip")
		}
		for range EachTag(b) {
		}
		var h httphead.Header
		copyHeaders(&h, m.headers)
	})
}

// FuzzHostileOrigin sends whatever headers the fuzzer makes up through a
// miss and a second request, and checks that nothing panics and that no
// client ever gets bytes other than the origin's.
func FuzzHostileOrigin(f *testing.F) {
	seeds := []string{
		"Cache-Control: max-age=60",
		"Cache-Control: max-age=99999999999999999999, s-maxage=-1, no-cache=\"",
		"Expires: Thu, 01 Jan 1970 00:00:00 GMT\nDate: garbage",
		"Vary: *\nCache-Control: public",
		"Vary: ,,,, ,\nCache-Control: max-age=5",
		"CDN-Cache-Control: max-age=?1;;;, private=\"\nSurrogate-Control: max-age=60+30",
		"Age: -5\nCache-Control: max-age=10\nETag: W/",
		"Content-Range: bytes 0-1/2\nCache-Control: max-age=10",
		"Surrogate-Key: " + strings.Repeat("k ", 500),
		"Cache-Control: stale-while-revalidate=1, max-age=0\nLast-Modified: Sun, 06 Nov 1994 08:49:37 GMT",
	}
	for _, s := range seeds {
		f.Add(s, "bytes=0-3", uint16(200))
	}
	f.Fuzz(func(t *testing.T, headers, rng string, status uint16) {
		st := int(status%500) + 100
		var hs []string
		for _, line := range strings.Split(headers, "\n") {
			if name, _, ok := strings.Cut(line, ":"); ok && httpToken(name) {
				hs = append(hs, line)
			}
		}
		e := newEnv(t)
		const body = "0123456789"
		o := fixed(answer{status: st, headers: hs, body: body})
		for range 2 {
			r := e.get(o, "/fuzz", "Range: "+rng)
			if r.readErr != nil {
				t.Fatalf("read error: %v", r.readErr)
			}
			if r.body != "" && !strings.Contains(body, r.body) {
				t.Fatalf("client got %q, not a part of the origin's body", r.body)
			}
			e.clock.Advance(time.Minute)
			e.waitFills()
		}
	})
}

func httpToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}
