package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"net/url"
	"path"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/internal/malformed"
)

// FuzzReadRequest checks that whatever ReadRequest accepts, net/http accepts
// too and reads the same way: a request we pass on must not mean something
// else to a Go origin.
func FuzzReadRequest(f *testing.F) {
	for _, tt := range goodRequests {
		f.Add([]byte(tt.raw))
	}
	for _, c := range malformed.Cases {
		if len(c.Raw) < 4096 {
			f.Add([]byte(c.Raw))
		}
	}
	f.Fuzz(agreesWithNetHTTP)
}

// FuzzReadRequestParts is FuzzReadRequest on requests built from mutated
// parts, so that more of the inputs are nearly valid and the comparison
// with net/http is reached more often.
func FuzzReadRequestParts(f *testing.F) {
	f.Add("GET", "/a?b=c", "example.com", "Accept: */*\r\n")
	f.Add("POST", "http://a.example:8080/x", "a.example:8080", "Content-Length: 3\r\nX-A:  b \r\n")
	f.Add("OPTIONS", "*", "[::1]:80", "Transfer-Encoding: chunked\r\n")
	f.Add("CONNECT", "a.example:443", "a.example:443", "")
	f.Fuzz(func(t *testing.T, method, target, host, fields string) {
		agreesWithNetHTTP(t, []byte(method+" "+target+" HTTP/1.1\r\nHost: "+host+"\r\n"+fields+"\r\n"))
	})
}

// agreesWithNetHTTP fails when ReadRequest accepts raw and net/http rejects
// it or reads it differently.
func agreesWithNetHTTP(t *testing.T, raw []byte) {
	var req httphead.Request
	if err := ReadRequest(bufio.NewReader(bytes.NewReader(raw)), &req, []byte("http"), Limits{}); err != nil {
		return
	}
	// net/http does not skip leading empty lines; RFC 9112 section 2.2 lets us.
	std, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(bytes.TrimLeft(raw, "\r\n"))))
	if err != nil {
		t.Fatalf("we accepted what net/http rejects (%v):\n%q", err, raw)
	}
	if std.Method != string(req.Method) {
		t.Errorf("method %q, net/http %q", req.Method, std.Method)
	}
	if want := canonicalHost(std.Host); want != string(req.Host) && !req.IsMethod("CONNECT") {
		t.Errorf("host %q, net/http %q", req.Host, std.Host)
	}
	if std.ContentLength != req.ContentLength {
		t.Errorf("content length %d, net/http %d", req.ContentLength, std.ContentLength)
	}
	if !req.IsMethod("CONNECT") {
		comparePath(t, req.Path, std.URL.Path)
	}
	compareFields(t, &req.Header, std.Header)
}

// canonicalHost is the authority as httphead makes it canonical for the
// scheme http: lower case, no default or empty port, no trailing dot.
func canonicalHost(h string) string {
	h = strings.ToLower(h)
	h = strings.TrimSuffix(strings.TrimSuffix(h, ":80"), ":")
	if !strings.HasSuffix(h, "]") {
		if name, port, ok := strings.Cut(h, ":"); ok {
			return strings.TrimSuffix(name, ".") + ":" + port
		}
	}
	if len(h) > 1 {
		h = strings.TrimSuffix(h, ".")
	}
	return h
}

// comparePath checks that our normalised path names what net/http's
// decoded path names once both are cleaned of dot-segments and "//".
func comparePath(t *testing.T, ours []byte, std string) {
	p, err := url.PathUnescape(string(ours))
	if err != nil {
		t.Fatalf("path %q does not unescape: %v", ours, err)
	}
	if std == "" {
		std = "/"
	}
	if path.Clean(p) != path.Clean(std) {
		t.Errorf("path %q, net/http %q", p, std)
	}
}

// compareFields checks every field we kept against net/http's map. It skips
// the fields net/http rewrites: it moves Host and Transfer-Encoding out of
// the map, merges equal Content-Lengths and drops "Connection: close" from
// responses; the framing checks cover those.
func compareFields(t *testing.T, h *httphead.Header, std http.Header) {
	seen := map[string]int{}
	for i := 0; i < h.Len(); i++ {
		name, value := h.Field(i)
		key := textproto.CanonicalMIMEHeaderKey(string(name))
		switch key {
		case "Host", "Transfer-Encoding", "Content-Length", "Connection":
			continue
		}
		vs := std[key]
		if seen[key] >= len(vs) || vs[seen[key]] != string(value) {
			t.Errorf("field %q: %q, net/http %q", name, value, vs)
		}
		seen[key]++
	}
}

// FuzzReadResponse checks ReadResponse against net/http.ReadResponse the
// same way, and that the body framing agrees.
func FuzzReadResponse(f *testing.F) {
	for _, tt := range responseTests {
		if tt.method == "GET" {
			f.Add([]byte(tt.raw))
		}
	}
	for _, tt := range badResponses {
		f.Add([]byte(tt.raw))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var resp httphead.Response
		br := bufio.NewReader(bytes.NewReader(raw))
		if err := ReadResponse(br, &resp, []byte("GET"), Limits{}); err != nil {
			return
		}
		if len(resp.TransferCodings) > 0 {
			return // net/http refuses codings it cannot decode; RFC 9112 section 6.3 relays them (TestRFC9112Section6_3*)
		}
		std, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(raw)), nil)
		if err != nil {
			t.Fatalf("we accepted what net/http rejects (%v):\n%q", err, raw)
		}
		if std.StatusCode != resp.Status || std.ContentLength != resp.ContentLength {
			t.Errorf("status %d length %d, net/http %d %d", resp.Status, resp.ContentLength, std.StatusCode, std.ContentLength)
		}
		compareFields(t, &resp.Header, std.Header)
		var body BodyReader
		body.Reset(br, resp.ContentLength, resp.Chunked)
		ours, ourErr := io.ReadAll(&body)
		theirs, stdErr := io.ReadAll(std.Body)
		if ourErr == nil && (stdErr != nil || !bytes.Equal(ours, theirs)) {
			t.Errorf("body %q, net/http %q (%v)", ours, theirs, stdErr)
		}
	})
}

// FuzzChunked checks our chunked decoder against httputil's on input we
// accept, and that re-encoding with ChunkedWriter reads back the same.
func FuzzChunked(f *testing.F) {
	for _, tt := range bodyTests {
		if tt.chunked {
			f.Add([]byte(tt.raw))
		}
	}
	for _, c := range malformed.Cases {
		if c.Body {
			f.Add([]byte(c.Raw[strings.Index(c.Raw, "\r\n\r\n")+4:]))
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		var r BodyReader
		r.Reset(bufio.NewReader(bytes.NewReader(raw)), -1, true)
		ours, err := io.ReadAll(&r)
		if err != nil {
			return
		}
		theirs, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(raw)))
		if err != nil || !bytes.Equal(ours, theirs) {
			t.Fatalf("decoded %q, httputil %q (%v)", ours, theirs, err)
		}
		var wire bytes.Buffer
		var w ChunkedWriter
		w.Reset(&wire)
		w.Write(ours[:len(ours)/2])
		w.Write(ours[len(ours)/2:])
		w.Close(r.Trailers())
		var again BodyReader
		again.Reset(bufio.NewReader(&wire), -1, true)
		back, err := io.ReadAll(&again)
		if err != nil || !bytes.Equal(back, ours) || again.Trailers().Len() != r.Trailers().Len() {
			t.Fatalf("round trip gave %q (%v), want %q", back, err, ours)
		}
	})
}
