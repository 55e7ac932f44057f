package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

var responseTests = []struct {
	name   string
	method string
	raw    string
	status int
	reason string
	length int64
	chunk  bool
	close  bool
}{
	{"content-length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", 200, "OK", 3, false, false},
	{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 200, "OK", -1, true, false},
	{"close-delimited", "GET", "HTTP/1.1 200 OK\r\n\r\nabc", 200, "OK", -1, false, true},
	{"HTTP/1.0 closes", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", 200, "OK", 0, false, true},
	{"HTTP/1.0 keep-alive", "GET", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", 200, "OK", 0, false, false},
	{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", 200, "OK", 1, false, true},
	{"HEAD has no body", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 200, "OK", 0, false, false},
	{"304 has no body", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n", 304, "Not Modified", 0, false, false},
	{"204 has no body", "GET", "HTTP/1.1 204 No Content\r\n\r\n", 204, "No Content", 0, false, false},
	{"100 continue", "PUT", "HTTP/1.1 100 Continue\r\n\r\n", 100, "Continue", 0, false, false},
	{"101 switching", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", 101, "Switching Protocols", 0, false, false},
	{"missing reason", "GET", "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", 200, "", 0, false, false},
	{"empty reason", "GET", "HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n", 404, "", 0, false, false},
	{"custom reason", "GET", "HTTP/1.1 599 Very Odd\r\nContent-Length: 0\r\n\r\n", 599, "Very Odd", 0, false, false},
}

func TestReadResponseSetsFraming(t *testing.T) {
	for _, tt := range responseTests {
		t.Run(tt.name, func(t *testing.T) {
			var resp httphead.Response
			err := ReadResponse(bufio.NewReader(strings.NewReader(tt.raw)), &resp, []byte(tt.method), Limits{})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Status != tt.status || string(resp.Reason) != tt.reason || resp.ContentLength != tt.length ||
				resp.Chunked != tt.chunk || resp.Close != tt.close {
				t.Errorf("got %d %q len=%d chunked=%v close=%v", resp.Status, resp.Reason, resp.ContentLength, resp.Chunked, resp.Close)
			}
		})
	}
}

var badResponses = []struct{ name, raw string }{
	{"content-length and chunked", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{"differing content-lengths", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"},
	{"chunked before another coding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"},
	{"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
	{"unknown coding and content-length", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\nContent-Length: 3\r\n\r\nabc"},
	{"unknown coding in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: foo\r\n\r\n"},
	{"chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"},
	{"HTTP/2 status line", "HTTP/2.0 200 OK\r\n\r\n"},
	{"two-digit status", "HTTP/1.1 20 OK\r\n\r\n"},
	{"status below 100", "HTTP/1.1 099 Odd\r\n\r\n"},
	{"no space after status", "HTTP/1.1 200OK\r\n\r\n"},
	{"garbage", "SSH-2.0-OpenSSH\r\n\r\n"},
	{"control byte in reason", "HTTP/1.1 200 O\x01K\r\n\r\n"},
	{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: b\r\n c\r\n\r\n"},
	{"bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\n\n"},
	{"truncated head", "HTTP/1.1 200 OK\r\nContent-Le"},
}

func TestReadResponseRejectsAmbiguousHeadsWith502(t *testing.T) {
	for _, tt := range badResponses {
		t.Run(tt.name, func(t *testing.T) {
			var resp httphead.Response
			err := ReadResponse(bufio.NewReader(strings.NewReader(tt.raw)), &resp, []byte("GET"), Limits{})
			var e *Error
			if !errors.As(err, &e) || e.Status != 502 {
				t.Fatalf("got %v, want *Error with status 502", err)
			}
		})
	}
}

func TestReadResponseReturnsEOFOnClosedIdleConnection(t *testing.T) {
	var resp httphead.Response
	if err := ReadResponse(bufio.NewReader(strings.NewReader("")), &resp, []byte("GET"), Limits{}); err != io.EOF {
		t.Fatalf("got %v, want io.EOF", err)
	}
}

// RFC 9112 section 6.3, item 4: a response whose final transfer coding is
// not chunked runs until the connection closes; codings before a final
// chunked are kept for the relay to name (section 6.1). A response
// without a body has nothing coded.
func TestRFC9112Section6_3ResponseTransferCodings(t *testing.T) {
	tests := []struct {
		name, method, raw, codings, body string
		chunked                          bool
	}{
		{"unknown coding runs to close", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n\x01coded\r\n", "foo", "\x01coded\r\n", false},
		{"two codings", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: foo\r\n\r\nxyz", "gzip, foo", "xyz", false},
		{"gzip then chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n3\r\nxyz\r\n0\r\n\r\n", "gzip", "xyz", true},
		{"HEAD response", "HEAD", "HTTP/1.1 200 OK\r\nTransfer-Encoding: foo\r\n\r\n", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp httphead.Response
			br := bufio.NewReader(strings.NewReader(tt.raw))
			if err := ReadResponse(br, &resp, []byte(tt.method), Limits{}); err != nil {
				t.Fatal(err)
			}
			var body BodyReader
			body.Reset(br, resp.ContentLength, resp.Chunked)
			b, err := io.ReadAll(&body)
			if err != nil || string(b) != tt.body || string(resp.TransferCodings) != tt.codings || resp.Chunked != tt.chunked {
				t.Fatalf("codings %q chunked %v body %q (%v); want %q %v %q", resp.TransferCodings, resp.Chunked, b, err, tt.codings, tt.chunked, tt.body)
			}
			if tt.codings != "" && !tt.chunked && !resp.Close {
				t.Error("a body that runs to the close leaves the connection unusable: Close must be set")
			}
		})
	}
}
