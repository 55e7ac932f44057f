package transform

import (
	"bytes"
	"io"
	"mime"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// TestReplaceAcrossReadBoundaries feeds the rewriter one byte per read, so
// every match straddles reads, and checks leftmost-longest replacement.
func TestReplaceAcrossReadBoundaries(t *testing.T) {
	pairs := []Replacement{
		{Find: []byte("https://registry.example/"), With: []byte("https://edge.example/")},
		{Find: []byte("registry"), With: []byte("REG")},
		{Find: []byte("ab"), With: nil},
	}
	in := `{"tarball":"https://registry.example/a/-/a-1.tgz","x":"registry","y":"aab","z":"https://registry.exampl"}`
	want := `{"tarball":"https://edge.example/a/-/a-1.tgz","x":"REG","y":"a","z":"https://REG.exampl"}`
	for _, r := range []io.Reader{strings.NewReader(in), iotest.OneByteReader(strings.NewReader(in)), iotest.HalfReader(strings.NewReader(in))} {
		got, err := io.ReadAll(iotest.OneByteReader(newReplaceReader(io.NopCloser(r), pairs)))
		if err != nil || string(got) != want {
			t.Fatalf("got %q, %v\nwant %q", got, err, want)
		}
	}
}

// TestReplaceHoldsBoundedMemory streams 8 MiB through the rewriter and
// checks it never held more than one read plus the longest find.
func TestReplaceHoldsBoundedMemory(t *testing.T) {
	src := strings.NewReader(strings.Repeat("http://o/ x ", (8<<20)/12))
	r := newReplaceReader(io.NopCloser(src), []Replacement{{Find: []byte("http://o/"), With: []byte("https://edge/")}})
	buf := make([]byte, 4096)
	var n int64
	for {
		k, err := r.Read(buf)
		n += int64(k)
		if cap(r.buf) > 64<<10+len("http://o/") {
			t.Fatalf("rewriter holds %d bytes", cap(r.buf))
		}
		if err == io.EOF {
			break
		}
	}
	if n <= (8<<20)/12*12 {
		t.Fatalf("read %d bytes, want more than the source (replacements are longer)", n)
	}
}

func TestEncodeRoundTrips(t *testing.T) {
	body := bytes.Repeat([]byte(`{"name":"pkg","version":"1.0.0"},`), 2000)
	for coding := range encoderPools {
		for i := 0; i < 2; i++ { // the second use takes a pooled encoder
			enc := newEncodeReader(io.NopCloser(bytes.NewReader(body)), coding)
			coded, err := io.ReadAll(enc)
			enc.Close()
			if err != nil || len(coded) >= len(body)/4 {
				t.Fatalf("%s: %d bytes from %d, %v", coding, len(coded), len(body), err)
			}
			dec, err := newDecodeReader(io.NopCloser(bytes.NewReader(coded)), coding)
			if err != nil {
				t.Fatal(err)
			}
			plain, err := io.ReadAll(dec)
			dec.Close()
			if err != nil || !bytes.Equal(plain, body) {
				t.Fatalf("%s: decoded %d bytes, %v", coding, len(plain), err)
			}
		}
	}
}

// RFC 9110 section 8.8.3: the coded representation gets its own tag; the
// origin is asked with its own.
func TestRFC9110Section8_8_3ETagSuffixes(t *testing.T) {
	var h httphead.Header
	h.AddString("ETag", `"abc"`)
	suffixETag(&h, "br")
	suffixETag(&h, "br")
	if got := h.Get("ETag"); got != `"abc-br"` {
		t.Fatalf("ETag %s", got)
	}
	var w httphead.Header
	w.AddString("ETag", `W/"abc"`)
	suffixETag(&w, "zstd")
	if got := w.Get("ETag"); got != `W/"abc-zstd"` {
		t.Fatalf("weak ETag %s", got)
	}
	var r httphead.Header
	r.AddString("If-None-Match", `"abc-br", W/"def-gzip", "x-y"`)
	if coding := unsuffixConditional(&r); coding == "" || r.Get("If-None-Match") != `"abc", W/"def", "x-y"` {
		t.Fatalf("If-None-Match %s (%s)", r.Get("If-None-Match"), coding)
	}
}

func TestTypesAndAlreadyCompressed(t *testing.T) {
	list := []string{"text/*", "application/json", "+xml"}
	for mt, want := range map[string]bool{"text/html": true, "application/json": true, "application/atom+xml": true,
		"application/javascript": false, "": false, "textual/x": false} {
		if typeListed(list, []byte(mt)) != want {
			t.Errorf("%q listed: want %v", mt, want)
		}
	}
	for mt, want := range map[string]bool{"image/png": true, "image/svg+xml": false, "application/zip": true,
		"video/mp4": true, "font/woff2": true, "text/css": false} {
		if AlreadyCompressed(mt) != want {
			t.Errorf("%q compressed already: want %v", mt, want)
		}
	}
}

func TestMediaTypeOf(t *testing.T) {
	for ct, want := range map[string]string{"Text/HTML; charset=UTF-8": "text/html", " application/json ": "application/json",
		"image/svg+xml;": "image/svg+xml", "text/plain;;bad": "text/plain", "texthtml": "", "/html": "", "text/": "",
		"te xt/html": "", "text/ht@ml": "", "": "", "a/" + strings.Repeat("b", 63): ""} {
		var buf [64]byte
		if got := string(mediaTypeOf([]byte(ct), &buf)); got != want {
			t.Errorf("%q: %q, want %q", ct, got, want)
		}
	}
}

// FuzzMediaTypeOf: wherever mime.ParseMediaType reads a type/subtype of
// RFC 9110 tokens that fits the buffer, mediaTypeOf reads the same (mime
// also takes a type alone, and RFC 2045's wider token).
func FuzzMediaTypeOf(f *testing.F) {
	for _, s := range []string{"text/html; charset=utf-8", "Application/JSON", "a/b;c=\"d\"", "x/y ; q"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		if strings.ContainsFunc(ct, func(r rune) bool { return r < ' ' && r != '\t' || r == 0x7f }) {
			return // not a field value: the codecs refuse control characters
		}
		var buf [64]byte
		got := mediaTypeOf([]byte(ct), &buf)
		want, _, err := mime.ParseMediaType(ct)
		major, minor, ok := strings.Cut(want, "/")
		rfc9110 := ok && httphead.IsToken([]byte(major)) && httphead.IsToken([]byte(minor))
		if err == nil && rfc9110 && len(want) <= len(buf) && string(got) != want {
			t.Fatalf("%q: %q, mime reads %q", ct, got, want)
		}
	})
}

// A compressed response whose origin sends a part and then waits reaches
// the client part by part: the encoder is flushed before the source is
// read again.
func TestCompressedStreamLeavesAsTheOriginSendsIt(t *testing.T) {
	for _, coding := range []string{"gzip", "br", "zstd"} {
		t.Run(coding, func(t *testing.T) {
			src, origin := io.Pipe()
			enc := newEncodeReader(src, coding)
			coded, codedW := io.Pipe()
			copied := make(chan struct{})
			go func() { _, err := io.Copy(codedW, enc); codedW.CloseWithError(err); close(copied) }()
			// The reader and Close share one goroutine in the proxy too.
			defer func() { origin.Close(); coded.Close(); <-copied; enc.Close() }()
			go origin.Write([]byte("first ")) // and then nothing until the test ends
			got := make(chan string, 1)
			go func() {
				dec, err := newDecodeReader(coded, coding)
				if err != nil {
					got <- err.Error()
					return
				}
				b := make([]byte, len("first "))
				if _, err := io.ReadFull(dec, b); err != nil {
					got <- err.Error()
					return
				}
				got <- string(b)
			}()
			select {
			case s := <-got:
				if s != "first " {
					t.Fatalf("first part: %q", s)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the first part is held back until the origin sends more")
			}
		})
	}
}
