package httphead

import (
	"strings"
	"testing"
)

func TestRemoveHopByHopDropsFieldsNamedInConnection(t *testing.T) {
	var h Header
	h.AddString("X-A", "1")
	h.AddString("Connection", "keep-alive, X-Secret")
	h.AddString("X-Secret", "s")
	h.AddString("Keep-Alive", "timeout=5")
	h.AddString("Transfer-Encoding", "chunked")
	h.AddString("X-B", "2")
	h.RemoveHopByHop()
	got := string(h.AppendTo(nil))
	if want := "X-A: 1\r\nX-B: 2\r\n"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestHeaderPeekIsCaseInsensitiveAndKeepsOrder(t *testing.T) {
	var h Header
	h.AddString("Content-Type", "text/html")
	h.AddString("x-multi", "a")
	h.AddString("X-Multi", "b")
	if v := h.Get("content-type"); v != "text/html" {
		t.Fatalf("Get = %q", v)
	}
	var vals []string
	h.Values("X-MULTI", func(v []byte) bool { vals = append(vals, string(v)); return true })
	if len(vals) != 2 || vals[0] != "a" || vals[1] != "b" {
		t.Fatalf("Values = %v", vals)
	}
	h.Set("x-multi", "c")
	if h.Count("X-Multi") != 1 || h.Get("X-Multi") != "c" {
		t.Fatalf("Set did not replace: %q", h.AppendTo(nil))
	}
}

func TestSetLineSplitsTargetAndLowercasesHost(t *testing.T) {
	var r Request
	r.SetLine([]byte("GET"), []byte("http://Example.ORG/a/b?x=1"), []byte("Example.ORG"), []byte("http"))
	if string(r.Path) != "/a/b" || string(r.Query) != "x=1" || string(r.Host) != "example.org" {
		t.Fatalf("path %q query %q host %q", r.Path, r.Query, r.Host)
	}
}

func BenchmarkHeaderReuse(b *testing.B) {
	b.ReportAllocs()
	var h Header
	for i := 0; i < b.N; i++ {
		h.Reset()
		h.AddString("Host", "example.org")
		h.AddString("Accept", "*/*")
		h.AddString("Connection", "close")
		h.RemoveHopByHop()
		_ = h.Peek("accept")
	}
}

// RFC 9110 section 6.5.1: the fields a trailer section must not carry
// are dropped, any case; the others stay in order.
func TestRFC9110_6_5_1_RemoveNotInTrailers(t *testing.T) {
	var h Header
	for _, f := range [][2]string{{"grpc-status", "0"}, {"authorization", "x"}, {"X-Sum", "1"}, {"Content-Length", "5"},
		{"Set-Cookie", "a=b"}, {"Connection", "close"}, {"HOST", "h"}, {"If-Match", "*"}, {"X-Other", "2"}} {
		h.AddString(f[0], f[1])
	}
	if n := h.RemoveNotInTrailers(); n != 6 {
		t.Errorf("dropped %d, want 6", n)
	}
	var got []string
	for i := 0; i < h.Len(); i++ {
		name, _ := h.Field(i)
		got = append(got, string(name))
	}
	if strings.Join(got, ",") != "grpc-status,X-Sum,X-Other" {
		t.Errorf("kept %v", got)
	}
}
