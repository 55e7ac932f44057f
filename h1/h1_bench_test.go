package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

// browserGET is a typical browser navigation request: ten fields.
const browserGET = "GET /articles/2026/edge-caching?utm_source=feed&page=2 HTTP/1.1\r\n" +
	"Host: www.example.com\r\n" +
	"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\r\n" +
	"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
	"Accept-Language: en-GB,en;q=0.5\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Referer: https://www.example.com/articles\r\n" +
	"Connection: keep-alive\r\n" +
	"Cookie: session=3f9a1c0b7e; theme=dark; consent=yes\r\n" +
	"Upgrade-Insecure-Requests: 1\r\n" +
	"If-None-Match: \"33a64df551425fcc55e4d42a148795d9f25f89d4\"\r\n" +
	"\r\n"

func BenchmarkReadRequest(b *testing.B) {
	raw := []byte(browserGET)
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	var req httphead.Request
	scheme := []byte("https")
	b.ReportAllocs()
	b.SetBytes(int64(len(browserGET)))
	for b.Loop() {
		src.Reset(raw)
		br.Reset(src)
		if err := ReadRequest(br, &req, scheme, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkNetHTTPReadRequest is the reference the package doc quotes.
func BenchmarkNetHTTPReadRequest(b *testing.B) {
	raw := []byte(browserGET)
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	b.ReportAllocs()
	b.SetBytes(int64(len(browserGET)))
	for b.Loop() {
		src.Reset(raw)
		br.Reset(src)
		if _, err := http.ReadRequest(br); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadResponse(b *testing.B) {
	raw := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: 5120\r\n" +
		"Cache-Control: public, max-age=300\r\nETag: \"abc123\"\r\nDate: Mon, 23 Nov 2026 16:00:00 GMT\r\n" +
		"Last-Modified: Mon, 23 Nov 2026 15:00:00 GMT\r\nVary: Accept-Encoding\r\n\r\n")
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	var resp httphead.Response
	method := []byte("GET")
	b.ReportAllocs()
	for b.Loop() {
		src.Reset(raw)
		br.Reset(src)
		if err := ReadResponse(br, &resp, method, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAppendResponseHead(b *testing.B) {
	var h httphead.Header
	h.AddString("Content-Type", "text/html; charset=utf-8")
	h.AddString("Content-Length", "5120")
	h.AddString("Cache-Control", "public, max-age=300")
	h.AddString("Age", "12")
	dst := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		dst = AppendResponseHead(dst[:0], 200, nil, &h)
	}
}

func BenchmarkChunkedBody(b *testing.B) {
	var wire bytes.Buffer
	var w ChunkedWriter
	w.Reset(&wire)
	chunk := bytes.Repeat([]byte("x"), 4096)
	for range 16 {
		w.Write(chunk)
	}
	w.Close(nil)
	raw := wire.Bytes()
	src := bytes.NewReader(raw)
	br := bufio.NewReader(src)
	var r BodyReader
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(16 * len(chunk)))
	for b.Loop() {
		src.Reset(raw)
		br.Reset(src)
		r.Reset(br, -1, true)
		for {
			_, err := r.Read(buf)
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}
