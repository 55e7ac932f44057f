package h1

import (
	"bufio"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

func TestAppendResponseHeadWritesStatusLine(t *testing.T) {
	var h httphead.Header
	h.AddString("Content-Length", "0")
	tests := []struct {
		status int
		reason string
		want   string
	}{
		{200, "", "HTTP/1.1 200 OK\r\n"},
		{404, "Not Found", "HTTP/1.1 404 Not Found\r\n"},
		{404, "Gone Fishing", "HTTP/1.1 404 Gone Fishing\r\n"},
		{599, "", "HTTP/1.1 599 \r\n"},
		{299, "Odd", "HTTP/1.1 299 Odd\r\n"},
	}
	for _, tt := range tests {
		got := string(AppendResponseHead(nil, tt.status, []byte(tt.reason), &h))
		if want := tt.want + "Content-Length: 0\r\n\r\n"; got != want {
			t.Errorf("%d %q: got %q, want %q", tt.status, tt.reason, got, want)
		}
	}
}

func TestAppendedHeadsReadBack(t *testing.T) {
	var h httphead.Header
	h.AddString("Host", "a.example")
	h.AddString("X-Case", "Kept")
	h.AddString("Content-Length", "2")
	raw := AppendRequestHead(nil, []byte("PUT"), []byte("/x?y"), &h)
	var req httphead.Request
	if err := ReadRequest(bufio.NewReader(bytes.NewReader(raw)), &req, nil, Limits{}); err != nil {
		t.Fatal(err)
	}
	if string(req.Method) != "PUT" || string(req.Target) != "/x?y" || req.ContentLength != 2 || req.Header.Get("X-Case") != "Kept" {
		t.Errorf("read back %s %s len=%d", req.Method, req.Target, req.ContentLength)
	}
	raw = AppendResponseHead(nil, 201, nil, &h)
	var resp httphead.Response
	if err := ReadResponse(bufio.NewReader(bytes.NewReader(raw)), &resp, []byte("PUT"), Limits{}); err != nil {
		t.Fatal(err)
	}
	if resp.Status != 201 || string(resp.Reason) != "Created" || resp.ContentLength != 2 {
		t.Errorf("read back %d %s len=%d", resp.Status, resp.Reason, resp.ContentLength)
	}
}

func TestChunkedWriterRoundTrips(t *testing.T) {
	var out bytes.Buffer
	var w ChunkedWriter
	w.Reset(&out)
	for _, p := range []string{"hello", "", strings.Repeat("x", 300)} {
		if _, err := w.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	var tr httphead.Header
	tr.AddString("X-Checksum", "abc")
	if err := w.Close(&tr); err != nil {
		t.Fatal(err)
	}
	wantWire := "5\r\nhello\r\n12c\r\n" + strings.Repeat("x", 300) + "\r\n0\r\nX-Checksum: abc\r\n\r\n"
	if out.String() != wantWire {
		t.Fatalf("wire %q", out.String())
	}
	var r BodyReader
	r.Reset(bufio.NewReader(&out), -1, true)
	got, err := io.ReadAll(&r)
	if err != nil || string(got) != "hello"+strings.Repeat("x", 300) || r.Trailers().Get("X-Checksum") != "abc" {
		t.Fatalf("read back %q, %v", got, err)
	}
}

// TestWritersDropFieldsThatWouldSplitTheMessage: a field set through the
// Go API with CR, LF or NUL in it, or with a name that is not a token,
// never reaches the wire, and the rest of the head still reads back as
// one message.
func TestWritersDropFieldsThatWouldSplitTheMessage(t *testing.T) {
	var h httphead.Header
	h.AddString("Host", "a.example")
	h.AddString("X-Split", "1\r\nContent-Length: 5")
	h.AddString("X-Bare-LF", "1\nSet-Cookie: s=evil")
	h.AddString("X-Nul", "a\x00b")
	h.AddString("X-Bad\r\nName", "v")
	h.AddString("X-Kept", "a\tb \x80")
	h.AddString("Content-Length", "0")
	want := "Host: a.example\r\nX-Kept: a\tb \x80\r\nContent-Length: 0\r\n\r\n"

	raw := string(AppendRequestHead(nil, []byte("GET"), []byte("/"), &h))
	if got := strings.TrimPrefix(raw, "GET / HTTP/1.1\r\n"); got != want {
		t.Errorf("request head fields %q, want %q", got, want)
	}
	raw = string(AppendResponseHead(nil, 200, []byte("OK\r\nSet-Cookie: s=evil"), &h))
	if wantResp := "HTTP/1.1 200 OK\r\n" + want; raw != wantResp {
		t.Errorf("response head %q, want %q", raw, wantResp)
	}
	var out bytes.Buffer
	var w ChunkedWriter
	w.Reset(&out)
	if err := w.Close(&h); err != nil {
		t.Fatal(err)
	}
	if wantTrailer := "0\r\n" + want; out.String() != wantTrailer {
		t.Errorf("trailers %q, want %q", out.String(), wantTrailer)
	}
}

func TestWritingAHeadDoesNotAllocate(t *testing.T) {
	var h httphead.Header
	h.AddString("Content-Type", "text/plain")
	h.AddString("Cache-Control", "max-age=60")
	h.AddString("X-Split", "1\r\n2")
	buf := make([]byte, 0, 512)
	if n := testing.AllocsPerRun(100, func() {
		buf = AppendResponseHead(buf[:0], 200, nil, &h)
		buf = AppendRequestHead(buf[:0], []byte("GET"), []byte("/"), &h)
	}); n != 0 {
		t.Errorf("%v allocations per head, want 0", n)
	}
}
