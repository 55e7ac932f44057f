package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

var bodyTests = []struct {
	name     string
	raw      string
	length   int64
	chunked  bool
	want     string
	trailers int
	err      error // io.ErrUnexpectedEOF, or errBad for an *Error
	rest     string
}{
	{name: "fixed length", raw: "helloNEXT", length: 5, want: "hello", rest: "NEXT"},
	{name: "empty fixed length", raw: "NEXT", length: 0, want: "", rest: "NEXT"},
	{name: "short fixed length", raw: "hel", length: 5, want: "hel", err: io.ErrUnexpectedEOF},
	{name: "until close", raw: "all of it", length: -1, want: "all of it"},
	{name: "chunked", raw: "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", chunked: true, want: "hello world", rest: "NEXT"},
	{name: "chunked uppercase hex", raw: "A\r\n0123456789\r\n0\r\n\r\n", chunked: true, want: "0123456789"},
	{name: "chunked with extensions", raw: "5;a=b; c ;d=\"q\\\"s\"\r\nhello\r\n0;last\r\n\r\n", chunked: true, want: "hello"},
	{name: "chunked with trailers", raw: "5\r\nhello\r\n0\r\nX-Sum: 1\r\nX-Other: 2\r\n\r\nNEXT", chunked: true, want: "hello", trailers: 2, rest: "NEXT"},
	{name: "chunked truncated in data", raw: "5\r\nhel", chunked: true, want: "hel", err: io.ErrUnexpectedEOF},
	{name: "chunked truncated before last chunk", raw: "5\r\nhello\r\n", chunked: true, want: "hello", err: io.ErrUnexpectedEOF},
	{name: "chunked truncated in trailers", raw: "5\r\nhello\r\n0\r\nX-A: 1\r\n", chunked: true, want: "hello", err: io.ErrUnexpectedEOF},
	{name: "chunked size too large", raw: "1000000000000000\r\n", chunked: true, err: errBad},
	{name: "chunked empty size", raw: "\r\n", chunked: true, err: errBad},
	{name: "chunked trailing space after size", raw: "5 \r\nhello\r\n0\r\n\r\n", chunked: true, err: errBad},
}

var errBad = errors.New("an *Error")

func TestBodyReaderFramesBodies(t *testing.T) {
	var r BodyReader
	for _, tt := range bodyTests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.raw), 32) // small, to split chunks across reads
			r.Reset(br, tt.length, tt.chunked)
			got, err := io.ReadAll(&r)
			switch {
			case tt.err == errBad:
				var e *Error
				if !errors.As(err, &e) || e.Status != 400 {
					t.Fatalf("got %v, want a 400 *Error", err)
				}
				return
			case err != tt.err:
				t.Fatalf("error %v, want %v", err, tt.err)
			}
			if string(got) != tt.want {
				t.Errorf("body %q, want %q", got, tt.want)
			}
			if n := r.Trailers().Len(); err == nil && n != tt.trailers {
				t.Errorf("%d trailers, want %d", n, tt.trailers)
			}
			if rest, _ := io.ReadAll(br); err == nil && string(rest) != tt.rest {
				t.Errorf("left %q in the reader, want %q", rest, tt.rest)
			}
		})
	}
}

func TestBodyReaderErrorsAreSticky(t *testing.T) {
	var r BodyReader
	r.Reset(bufio.NewReader(strings.NewReader("zz\r\n")), -1, true)
	buf := make([]byte, 8)
	_, first := r.Read(buf)
	_, second := r.Read(buf)
	if first == nil || first != second {
		t.Fatalf("first %v, second %v: want the same error twice", first, second)
	}
}
