package upstream

import (
	"bytes"
	"fmt"
	"testing"
)

func TestStickyCookieRoundTrips(t *testing.T) {
	b := newBackend(t, Config{}, servers("10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"))
	st := Sticky{Cookie: "srv", MaxAge: 3600e9, Secure: true}
	s := b.Server("10.0.0.2:80")
	set := string(st.AppendSetCookie(nil, s))
	want := fmt.Sprintf("srv=%016x", s.ID())
	if set != want+"; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax; Secure" {
		t.Fatalf("Set-Cookie %q", set)
	}
	header := []byte("theme=dark; " + want + "; other=1")
	id, ok := st.FromCookieHeader(header)
	if !ok || id != s.ID() {
		t.Fatalf("FromCookieHeader = %x, %v; want %x", id, ok, s.ID())
	}
	if st.NeedsCookie(id, ok, s) || !st.NeedsCookie(id, ok, b.Server("10.0.0.1:80")) || !st.NeedsCookie(0, false, s) {
		t.Fatal("NeedsCookie wrong")
	}
}

func TestStickyServerIsHonouredWhileUsable(t *testing.T) {
	b := newBackend(t, Config{}, servers("a", "b", "c"))
	target := b.Server("c")
	var it Iter
	for range 5 {
		if err := b.Begin(t.Context(), &it, 0); err != nil {
			t.Fatal(err)
		}
		if !it.Prefer(target.ID()) {
			t.Fatal("Prefer refused a healthy server")
		}
		s, err := it.Next()
		if err != nil || s.Addr != "c" {
			t.Fatalf("Next = %v, %v; want c", s, err)
		}
		b.Report(s, Success, 0)
		// A retry goes elsewhere.
		s, err = it.Next()
		if err != nil || s.Addr == "c" {
			t.Fatalf("retry = %v, %v; want another server", s, err)
		}
		b.Report(s, Success, 0)
		it.End()
	}
	b.SetHealthy("c", false)
	if err := b.Begin(t.Context(), &it, 0); err != nil {
		t.Fatal(err)
	}
	defer it.End()
	if it.Prefer(target.ID()) || it.Prefer(12345) {
		t.Fatal("Prefer accepted an unhealthy or unknown server")
	}
}

var cookieHeaderTests = []struct {
	header string
	id     uint64
	ok     bool
}{
	{"outpost_upstream=00000000000000ff", 0xff, true},
	{"a=b;outpost_upstream=0123456789abcdef;c=d", 0x0123456789abcdef, true},
	{"  outpost_upstream=ffffffffffffffff  ", 0xffffffffffffffff, true},
	{"outpost_upstream=0123456789ABCDEF", 0, false}, // we write lower case only
	{"outpost_upstream=123", 0, false},
	{"outpost_upstream=", 0, false},
	{"xoutpost_upstream=00000000000000ff", 0, false},
	{"outpost_upstream", 0, false},
	{"", 0, false},
	{";;;=;", 0, false},
}

func TestStickyParsesCookieHeaders(t *testing.T) {
	for _, tt := range cookieHeaderTests {
		id, ok := Sticky{}.FromCookieHeader([]byte(tt.header))
		if id != tt.id || ok != tt.ok {
			t.Errorf("FromCookieHeader(%q) = %x, %v; want %x, %v", tt.header, id, ok, tt.id, tt.ok)
		}
	}
}

func FuzzStickyCookieHeader(f *testing.F) {
	for _, tt := range cookieHeaderTests {
		f.Add([]byte(tt.header))
	}
	f.Fuzz(func(t *testing.T, h []byte) {
		id, ok := Sticky{}.FromCookieHeader(h)
		if !ok {
			return
		}
		// Whatever parsed must be what we would have written.
		want := appendID([]byte("outpost_upstream="), id)
		if !bytes.Contains(h, want) {
			t.Fatalf("parsed %x from %q, which does not carry %q", id, h, want)
		}
	})
}
