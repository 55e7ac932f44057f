package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/internal/malformed"
)

// wantRequest is what a good request must parse to; fields left zero are
// not checked except the flags.
type wantRequest struct {
	method, target, path, query, host string
	minor                             int
	length                            int64
	chunked, close, expect, upgrade   bool
	fields                            int
}

var goodRequests = []struct {
	name string
	raw  string
	want wantRequest
}{
	{"simple GET", "GET /a?b=c HTTP/1.1\r\nHost: Example.COM\r\n\r\n",
		wantRequest{method: "GET", target: "/a?b=c", path: "/a", query: "b=c", host: "example.com", minor: 1, fields: 1}},
	{"HTTP/1.0 closes by default", "GET / HTTP/1.0\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", minor: 0, close: true}},
	{"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", minor: 0, fields: 1}},
	{"connection close", "GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", host: "a", minor: 1, close: true, fields: 2}},
	{"content-length body", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		wantRequest{method: "POST", target: "/p", path: "/p", host: "a", minor: 1, length: 5, fields: 2}},
	{"identical content-lengths", "POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		wantRequest{method: "POST", target: "/p", path: "/p", host: "a", minor: 1, length: 5, fields: 3}},
	{"chunked body", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n0\r\n\r\n",
		wantRequest{method: "POST", target: "/", path: "/", host: "a", minor: 1, length: -1, chunked: true, fields: 2}},
	{"expect 100-continue", "PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\nx",
		wantRequest{method: "PUT", target: "/", path: "/", host: "a", minor: 1, length: 1, expect: true, fields: 3}},
	{"websocket upgrade", "GET /ws HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n",
		wantRequest{method: "GET", target: "/ws", path: "/ws", host: "a", minor: 1, upgrade: true, fields: 3}},
	{"upgrade token without upgrade field", "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", host: "a", minor: 1, fields: 2}},
	{"absolute-form sets host", "GET HTTP://Origin.Example:8080/x?y HTTP/1.1\r\nHost: origin.example:8080\r\n\r\n",
		wantRequest{method: "GET", target: "HTTP://Origin.Example:8080/x?y", path: "/x", query: "y", host: "origin.example:8080", minor: 1, fields: 1}},
	{"absolute-form without path", "GET http://a.example HTTP/1.0\r\n\r\n",
		wantRequest{method: "GET", target: "http://a.example", path: "/", host: "a.example", minor: 0, close: true}},
	{"asterisk-form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
		wantRequest{method: "OPTIONS", target: "*", path: "*", host: "a", minor: 1, fields: 1}},
	{"CONNECT authority-form", "CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n",
		wantRequest{method: "CONNECT", target: "a.example:443", path: "a.example:443", host: "a.example:443", minor: 1, fields: 1}},
	{"IPv4-mapped IPv6 host", "GET http://[::ffff:1.2.3.4]/ HTTP/1.1\r\nHost: [::FFFF:1.2.3.4]\r\n\r\n",
		wantRequest{method: "GET", target: "http://[::ffff:1.2.3.4]/", path: "/", host: "[::ffff:1.2.3.4]", minor: 1, fields: 1}},
	{"IPv6 host", "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", host: "[::1]:80", minor: 1, fields: 1}},
	{"empty host", "GET / HTTP/1.1\r\nHost:\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", minor: 1, fields: 1}},
	{"leading empty lines skipped", "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", host: "a", minor: 1, fields: 1}},
	{"optional whitespace trimmed", "GET / HTTP/1.1\r\nHost: \t a \t\r\nX-E:\r\n\r\n",
		wantRequest{method: "GET", target: "/", path: "/", host: "a", minor: 1, fields: 2}},
	{"obs-text and bad query percent accepted", "GET /%41?q=100% HTTP/1.1\r\nHost: a\r\nX-T: caf\xc3\xa9\r\n\r\n",
		wantRequest{method: "GET", target: "/%41?q=100%", path: "/A", query: "q=100%", host: "a", minor: 1, fields: 2}},
}

func readString(raw string, lim Limits) (*httphead.Request, *bufio.Reader, error) {
	br := bufio.NewReader(strings.NewReader(raw))
	req := &httphead.Request{}
	err := ReadRequest(br, req, []byte("https"), lim)
	return req, br, err
}

func TestReadRequestParsesGoodRequests(t *testing.T) {
	for _, tt := range goodRequests {
		t.Run(tt.name, func(t *testing.T) {
			req, _, err := readString(tt.raw, Limits{})
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			got := wantRequest{
				method: string(req.Method), target: string(req.Target), path: string(req.Path),
				query: string(req.Query), host: string(req.Host), minor: req.ProtoMinor,
				length: req.ContentLength, chunked: req.Chunked, close: req.Close,
				expect: req.Expect100, upgrade: req.Upgrade, fields: req.Header.Len(),
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
			if string(req.Scheme) != "https" || req.ProtoMajor != 1 {
				t.Errorf("scheme %q major %d", req.Scheme, req.ProtoMajor)
			}
		})
	}
}

func TestReadRequestKeepsFieldsAsReceived(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nhost: a\r\nX-Mixed-CASE:  v1 \r\nx-mixed-case: v2\r\nAccept: */*\r\n\r\n"
	req, _, err := readString(raw, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"host", "a"}, {"X-Mixed-CASE", "v1"}, {"x-mixed-case", "v2"}, {"Accept", "*/*"}}
	if req.Header.Len() != len(want) {
		t.Fatalf("got %d fields, want %d", req.Header.Len(), len(want))
	}
	for i, w := range want {
		n, v := req.Header.Field(i)
		if string(n) != w[0] || string(v) != w[1] {
			t.Errorf("field %d = %q: %q, want %q: %q", i, n, v, w[0], w[1])
		}
	}
}

func TestReadRequestReadsPipelinedRequestsIntoOneHead(t *testing.T) {
	raw := "GET /one HTTP/1.1\r\nHost: a\r\n\r\nPOST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhi" +
		"GET http://c.example/three HTTP/1.1\r\nHost: c.example\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(raw))
	var req httphead.Request
	var body BodyReader
	for _, want := range []struct{ path, host, body string }{{"/one", "a", ""}, {"/two", "b", "hi"}, {"/three", "c.example", ""}} {
		if err := ReadRequest(br, &req, []byte("http"), Limits{}); err != nil {
			t.Fatal(err)
		}
		body.Reset(br, req.ContentLength, req.Chunked)
		b, err := io.ReadAll(&body)
		if err != nil {
			t.Fatal(err)
		}
		if string(req.Path) != want.path || string(req.Host) != want.host || string(b) != want.body {
			t.Errorf("got %s %s %q, want %+v", req.Path, req.Host, b, want)
		}
	}
	if err := ReadRequest(br, &req, nil, Limits{}); err != io.EOF {
		t.Errorf("after last request: %v, want io.EOF", err)
	}
}

func TestReadRequestRejectsMalformedCorpus(t *testing.T) {
	if len(malformed.Cases) < 45 {
		t.Fatalf("corpus has %d cases, want at least 45", len(malformed.Cases))
	}
	for _, c := range malformed.Cases {
		t.Run(c.Name, func(t *testing.T) {
			req, br, err := readString(c.Raw, Limits{})
			if c.Body {
				if err != nil {
					t.Fatalf("head rejected (%v); the case is meant for the body reader", err)
				}
				var body BodyReader
				body.Reset(br, req.ContentLength, req.Chunked)
				_, err = io.Copy(io.Discard, &body)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want *Error with status %d", err, c.Status)
			}
			if e.Status != c.Status {
				t.Errorf("status %d (%s), want %d", e.Status, e.Reason, c.Status)
			}
		})
	}
}

func TestReadRequestReportsEndsOfInput(t *testing.T) {
	tests := []struct {
		name string
		raw  string
		want error // io.EOF, or nil for a truncated-head *Error
	}{
		{"closed before any byte", "", io.EOF},
		{"closed inside request line", "GET / HT", nil},
		{"closed inside fields", "GET / HTTP/1.1\r\nHost: a\r\n", nil},
		{"closed after empty lines", "\r\n", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readString(tt.raw, Limits{})
			if tt.want != nil {
				if err != tt.want {
					t.Fatalf("got %v, want %v", err, tt.want)
				}
				return
			}
			var e *Error
			if !errors.As(err, &e) || e.Status != 400 || !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Fatalf("got %v, want 400 wrapping io.ErrUnexpectedEOF", err)
			}
		})
	}
}

func TestReadRequestHonoursLimits(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\nX-B: 2\r\n\r\n"
	tests := []struct {
		name   string
		lim    Limits
		status int
	}{
		{"within limits", Limits{MaxHeaders: 3, MaxHeaderBytes: len(raw)}, 0},
		{"one field too many", Limits{MaxHeaders: 2}, 431},
		{"one byte too many", Limits{MaxHeaderBytes: len(raw) - 1}, 431},
		{"request line over the byte limit", Limits{MaxHeaderBytes: 10}, 414},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readString(raw, tt.lim)
			status := 0
			var e *Error
			if errors.As(err, &e) {
				status = e.Status
			} else if err != nil {
				t.Fatal(err)
			}
			if status != tt.status {
				t.Errorf("status %d (%v), want %d", status, err, tt.status)
			}
		})
	}
}

func TestReadRequestAllocatesNothingWhenReused(t *testing.T) {
	src := strings.NewReader("")
	br := bufio.NewReader(src)
	var req httphead.Request
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(browserGET)
		br.Reset(src)
		if err := ReadRequest(br, &req, nil, Limits{}); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per request, want 0", allocs)
	}
}
