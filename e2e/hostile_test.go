package e2e

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// hostileConfig has a 403 route on /admin, a deny rule on /internal and a
// catch-all to a recording origin, with small limits so that the limit
// cases stay small. {{CERT}} and {{KEY}} serve the TLS listener.
const hostileConfig = `
listeners:
  - addr: 127.0.0.1:0
  - addr: 127.0.0.1:0
    tls:
      certs:
        - {cert: "{{CERT}}", key: "{{KEY}}"}
limits: {max_header_bytes: 8KiB, max_headers: 20, max_body_bytes: 1KiB}
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
    first_byte_timeout: 2s
    connect_timeout: 1s
routes:
  - name: admin
    match: {path_prefix: /admin}
    respond: {status: 403, body: "admin only"}
  - name: all
    upstream: origin
protection:
  rules:
    - {name: no-internal, path_prefixes: [/internal], action: deny}
`

// hostileCase is one hostile request and the answer it must get on every
// protocol.
type hostileCase struct {
	name     string
	method   string
	target   string   // request-target, or :path on HTTP/2
	header   []string // extra name, value pairs
	body     string
	noLength bool   // send the body chunked (HTTP/1.1) or without content-length (HTTP/2)
	status   int    // the answer on every protocol
	upstream string // with status 200: the target the origin must receive
	// rawOnly: x/net's client refuses or cannot express the request, so
	// over HTTP/2 it is sent only by the raw framer.
	rawOnly bool
	// h2Refused: x/net's HTTP/2 server may treat the request as malformed
	// (RFC 9113 section 8.1.1) and reset the stream (PROTOCOL_ERROR), or
	// end the connection (COMPRESSION_ERROR for a field longer than the
	// header list limit), instead of answering the status; nothing reaches
	// the origin either way.
	h2Refused bool
}

func hostileCases() []hostileCase {
	many := make([]string, 0, 60)
	for i := range 30 {
		many = append(many, "X-Field-"+strconv.Itoa(i), "v")
	}
	big := strings.Repeat("b", 4<<10)
	return []hostileCase{
		{name: "plain request reaches the origin", target: "/hello?q=1", status: 200, upstream: "/hello?q=1"},
		{name: "route prefix", target: "/admin", status: 403},
		{name: "route prefix with trailing slash", target: "/admin/", status: 403},
		{name: "route prefix with query", target: "/admin?x=1", status: 403},
		{name: "double slash", target: "//admin", status: 403},
		{name: "double slash inside", target: "/admin//x", status: 403},
		{name: "escaped unreserved byte", target: "/%61dmin", status: 403},
		{name: "dot-dot segment", target: "/a/../admin", status: 403},
		{name: "dot-dot above the root", target: "/../admin", status: 403},
		{name: "dot segment", target: "/./admin", status: 403},
		{name: "escaped dot-dot segment", target: "/x/%2e%2e/admin", status: 403},
		{name: "escaped mixed-case dot-dot before a denied prefix", target: "/x/%2E%2e/internal/y", status: 403},
		{name: "denied prefix", target: "/internal", status: 403},
		{name: "double slash before a denied prefix", target: "//internal/y", status: 403},
		// Paths are case-sensitive (RFC 3986 section 6.2.2.1): /ADMIN is
		// another resource, and it is the origin's to answer.
		{name: "upper case is another path", target: "/ADMIN", status: 200, upstream: "/ADMIN"},
		{name: "encoded slash stays encoded", target: "/a%2fb", status: 200, upstream: "/a%2Fb"},
		// proxy.encoded_slash: keep (the default) makes "%2F" data inside
		// a segment; TestHostileEncodedSlashPolicies covers the others.
		{name: "encoded slash is data, not a separator", target: "/x%2f..%2fadmin", status: 200, upstream: "/x%2F..%2Fadmin"},
		{name: "backslash", target: `/a\..\admin`, status: 400, rawOnly: true},
		{name: "dot-dot-semicolon", target: "/..;/admin", status: 400},
		{name: "space in the target", target: "/a b", status: 400, rawOnly: true, h2Refused: true},
		{name: "tab in the target", target: "/a\tb", status: 400, rawOnly: true, h2Refused: true},
		{name: "control byte in the target", target: "/a\x01b", status: 400, rawOnly: true, h2Refused: true},
		{name: "DEL in the target", target: "/a\x7fb", status: 400, rawOnly: true, h2Refused: true},
		{name: "non-ASCII byte in the target", target: "/a\xffb", status: 400, rawOnly: true, h2Refused: true},
		{name: "fragment in the target", target: "/a#admin", status: 400, rawOnly: true, h2Refused: true},
		{name: "header list over max_header_bytes", target: "/big", header: []string{"X-Big-1", big, "X-Big-2", big, "X-Big-3", big}, status: 431, rawOnly: true},
		{name: "one field over max_header_bytes", target: "/big", header: []string{"X-Big", strings.Repeat(big, 4)}, status: 431, rawOnly: true, h2Refused: true},
		{name: "more fields than max_headers", target: "/many", header: many, status: 431},
		{name: "body under max_body_bytes", method: "POST", target: "/upload", body: "small", status: 200, upstream: "/upload"},
		{name: "body over max_body_bytes with its length", method: "POST", target: "/upload", body: big, status: 413},
		{name: "body over max_body_bytes without a length", method: "POST", target: "/upload", body: big, noLength: true, status: 413},
	}
}

// hostileEdge runs the hostile config with a cleartext and a TLS listener
// in front of a recording origin.
func hostileEdge(t *testing.T) (e *edge, origin *abuseRawOrigin, tlsAddr string, pool *x509.CertPool) {
	t.Helper()
	cert, key, pool := writeCert(t, t.TempDir(), "hostile", "hostile.example")
	origin = abuseStartRawOrigin(t)
	e = startEdge(t, hostileConfig, "{{CERT}}", cert, "{{KEY}}", key, "{{ORIGIN}}", origin.addr)
	return e, origin, e.Addrs()[1].String(), pool
}

// hostileProtocol sends a case one way and returns the status: -1 for a
// reset stream, -2 for a connection ended with an error, 0 for no answer.
type hostileProtocol struct {
	name string
	send func(t *testing.T, tc hostileCase) int
}

func TestHostileCorpusIsAnsweredAlikeOnEveryProtocol(t *testing.T) {
	e, origin, tlsAddr, pool := hostileEdge(t)
	addr := strings.TrimPrefix(e.URL, "http://")
	tlsConf := &tls.Config{ServerName: "hostile.example", RootCAs: pool, NextProtos: []string{"h2"}}
	h2cDial := func() (net.Conn, error) { return net.Dial("tcp", addr) }
	tlsDial := func() (net.Conn, error) { return tls.Dial("tcp", tlsAddr, tlsConf) }
	h2cClient := abuseH2CClient()
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http2.Transport{TLSClientConfig: tlsConf}}
	protocols := []hostileProtocol{
		{"http1", func(t *testing.T, tc hostileCase) int { return abuseRawStatus(t, addr, hostileH1(addr, tc)) }},
		{"h2c-client", func(t *testing.T, tc hostileCase) int { return hostileClient(t, h2cClient, "http://"+addr, tc) }},
		{"h2c-raw", func(t *testing.T, tc hostileCase) int { s, _ := hostileH2(t, h2cDial, "http", addr, tc); return s }},
		{"h2-tls-client", func(t *testing.T, tc hostileCase) int { return hostileClient(t, tlsClient, "https://"+tlsAddr, tc) }},
		{"h2-tls-raw", func(t *testing.T, tc hostileCase) int { s, _ := hostileH2(t, tlsDial, "https", tlsAddr, tc); return s }},
	}
	for _, tc := range hostileCases() {
		t.Run(tc.name, func(t *testing.T) {
			got := map[string]int{}
			for _, p := range protocols {
				if tc.rawOnly && strings.HasSuffix(p.name, "-client") {
					continue
				}
				before := origin.count()
				status := p.send(t, tc)
				got[p.name] = status
				reached := origin.count() - before
				switch {
				case status < 0 && tc.h2Refused && p.name != "http1":
					// x/net refused the stream as malformed: fine.
				case status != tc.status:
					t.Errorf("%s: status %d, want %d", p.name, status, tc.status)
				}
				if tc.upstream != "" {
					if reached != 1 {
						t.Errorf("%s: origin received %d requests, want 1", p.name, reached)
					} else if line, _, _ := strings.Cut(origin.last(), "\r\n"); line != hostileMethod(tc)+" "+tc.upstream+" HTTP/1.1" {
						t.Errorf("%s: origin received %q, want target %q", p.name, line, tc.upstream)
					}
				} else if reached > 0 && tc.body == "" {
					t.Errorf("%s: a refused request reached the origin: %q", p.name, hostileHead(origin.last()))
				}
			}
			t.Logf("statuses: %v", got)
		})
	}
	origin.mu.Lock()
	reqs := append([]string(nil), origin.reqs...)
	origin.mu.Unlock()
	for _, raw := range reqs {
		if err := hostileUpstreamSafe(raw); err != nil {
			t.Errorf("the origin received %q: %v", hostileHead(raw), err)
		}
	}
}

// hostileUpstreamSafe checks a request as the origin received it: its head
// is one the HTTP/1.1 codec (and net/http's) accepts, and its target does
// not name /admin or /internal even to an origin that decodes escapes
// (but "%2F", as proxy.encoded_slash: keep assumes), takes "\" for "/" and
// removes dot-segments.
func hostileUpstreamSafe(raw string) error {
	head := hostileHead(raw) + "\r\n\r\n"
	if err := abuseCheckClean(head); err != nil {
		return err
	}
	req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
	if err != nil {
		return fmt.Errorf("net/http refuses it: %w", err)
	}
	target := req.RequestURI
	for _, c := range []byte(target) {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return fmt.Errorf("byte %q in the target", c)
		}
	}
	p, _, _ := strings.Cut(target, "?")
	p = strings.ReplaceAll(strings.ReplaceAll(p, "%2F", "%252F"), "%2f", "%252F")
	if dec, err := url.PathUnescape(p); err == nil {
		p = dec
	}
	p = path.Clean("/" + strings.ReplaceAll(p, `\`, "/"))
	for _, deny := range []string{"/admin", "/internal"} {
		if p == deny || strings.HasPrefix(p, deny+"/") {
			return fmt.Errorf("an origin resolving it sees %q", p)
		}
	}
	return nil
}

// hostileHead is the head of a recorded request, without the final CRLF CRLF.
func hostileHead(raw string) string {
	head, _, _ := strings.Cut(raw, "\r\n\r\n")
	return head
}

func hostileMethod(tc hostileCase) string {
	if tc.method == "" {
		return "GET"
	}
	return tc.method
}

// hostileH1 is the case as raw HTTP/1.1 bytes.
func hostileH1(host string, tc hostileCase) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", hostileMethod(tc), tc.target, host)
	for i := 0; i+1 < len(tc.header); i += 2 {
		fmt.Fprintf(&b, "%s: %s\r\n", tc.header[i], tc.header[i+1])
	}
	switch {
	case tc.body == "":
		b.WriteString("\r\n")
	case tc.noLength:
		fmt.Fprintf(&b, "Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(tc.body), tc.body)
	default:
		fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(tc.body), tc.body)
	}
	return b.String()
}

// hostileClient sends the case with x/net's HTTP/2 client.
func hostileClient(t *testing.T, c *http.Client, base string, tc hostileCase) int {
	t.Helper()
	var body io.Reader
	if tc.body != "" {
		body = strings.NewReader(tc.body)
		if tc.noLength {
			body = io.MultiReader(body) // hides the length from the client
		}
	}
	req, err := http.NewRequest(hostileMethod(tc), base+tc.target, body)
	if err != nil {
		t.Fatalf("building the request: %v", err)
	}
	if req.URL.RequestURI() != tc.target {
		t.Fatalf("the client would send %q for %q", req.URL.RequestURI(), tc.target)
	}
	for i := 0; i+1 < len(tc.header); i += 2 {
		req.Header.Add(tc.header[i], tc.header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		if se := (http2.StreamError{}); errors.As(err, &se) {
			return -1
		}
		t.Logf("client: %v", err)
		return 0
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// hostileH2 sends the case on a new HTTP/2 connection with a raw framer,
// so that x/net's client cannot refuse or fix it, and returns the status:
// -1 when the server resets the stream, -2 when it ends the connection
// with an error, 0 when nothing answers.
func hostileH2(t *testing.T, dial func() (net.Conn, error), scheme, authority string, tc hostileCase) (int, *http2.MetaHeadersFrame) {
	t.Helper()
	conn, err := dial()
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fr := http2.NewFramer(conn, conn)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	io.WriteString(conn, http2.ClientPreface)
	fr.WriteSettings()
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	fields := []string{":method", hostileMethod(tc), ":scheme", scheme, ":authority", authority, ":path", tc.target}
	if tc.body != "" && !tc.noLength {
		fields = append(fields, "content-length", strconv.Itoa(len(tc.body)))
	}
	for i, f := 0, append(fields, tc.header...); i+1 < len(f); i += 2 {
		enc.WriteField(hpack.HeaderField{Name: strings.ToLower(f[i]), Value: f[i+1]})
	}
	// The block goes in frames of the default maximum size.
	const frame = 16 << 10
	b := block.Bytes()
	first := b[:min(len(b), frame)]
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndStream: tc.body == "", EndHeaders: len(first) == len(b)})
	for rest := b[len(first):]; len(rest) > 0; {
		n := min(len(rest), frame)
		fr.WriteContinuation(1, n == len(rest), rest[:n])
		rest = rest[n:]
	}
	if tc.body != "" {
		fr.WriteData(1, true, []byte(tc.body))
	}
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return 0, nil
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.RSTStreamFrame:
			if f.StreamID == 1 {
				return -1, nil
			}
		case *http2.GoAwayFrame:
			if f.ErrCode != http2.ErrCodeNo {
				return -2, nil
			}
		case *http2.MetaHeadersFrame:
			if s, _ := strconv.Atoi(f.PseudoValue("status")); f.StreamID == 1 && s >= 200 {
				return s, f
			}
		}
	}
}

// TestH2OversizedHeaderListIsAnsweredByTheEngine: an HTTP/2 request
// whose header list goes over max_header_bytes gets its 431 from the
// engine, like an HTTP/1.1 one: with its trace when it asked for it
// before the limit (and so in the access log and metrics).
func TestH2OversizedHeaderListIsAnsweredByTheEngine(t *testing.T) {
	e, _, _, _ := hostileEdge(t)
	addr := strings.TrimPrefix(e.URL, "http://")
	big := strings.Repeat("b", 4<<10)
	tc := hostileCase{target: "/big", header: []string{"X-Outpost-Trace", "1", "X-Big-1", big, "X-Big-2", big, "X-Big-3", big}}
	status, head := hostileH2(t, func() (net.Conn, error) { return net.Dial("tcp", addr) }, "http", addr, tc)
	var trace string
	if head != nil {
		for _, f := range head.RegularFields() {
			if f.Name == "x-outpost-trace" {
				trace = f.Value
			}
		}
	}
	if status != 431 || !strings.Contains(trace, "reject=") {
		t.Fatalf("status %d, trace %q; want 431 with a trace that says reject", status, trace)
	}
}

func TestHostilePathPolicies(t *testing.T) {
	for _, pol := range []struct {
		proxy string
		cases []hostileCase
	}{
		{"encoded_slash: decode", []hostileCase{
			{name: "encoded dot-dot", target: "/x%2f..%2fadmin", status: 403},
			{name: "encoded slash", target: "/a%2fb", status: 200, upstream: "/a/b"},
		}},
		{"encoded_slash: reject", []hostileCase{
			{name: "encoded dot-dot", target: "/x%2f..%2fadmin", status: 400},
			{name: "encoded slash", target: "/a%2Fb", status: 400},
			{name: "no encoded slash", target: "/a/b", status: 200, upstream: "/a/b"},
		}},
		{"merge_slashes: false", []hostileCase{
			{name: "empty segment kept", target: "/a//b", status: 200, upstream: "/a//b"},
			{name: "dot-dot still removed", target: "/a/../admin", status: 403},
		}},
		{"forward_path: as_sent", []hostileCase{
			{name: "target forwarded as sent", target: "/x/../y/%61?q", status: 200, upstream: "/x/../y/%61?q"},
			{name: "rules still see the normalised path", target: "/x/%2e%2e/admin", status: 403},
		}},
	} {
		t.Run(pol.proxy, func(t *testing.T) {
			origin := abuseStartRawOrigin(t)
			e := startEdge(t, "proxy: {"+pol.proxy+"}\n"+oneRoute, "{{ORIGIN}}", origin.addr,
				"- name: all", "- name: admin\n    match: {path_prefix: /admin}\n    respond: {status: 403}\n  - name: all")
			addr := strings.TrimPrefix(e.URL, "http://")
			dial := func() (net.Conn, error) { return net.Dial("tcp", addr) }
			for _, tc := range pol.cases {
				before := origin.count()
				h1 := abuseRawStatus(t, addr, hostileH1(addr, tc))
				h2, _ := hostileH2(t, dial, "http", addr, tc)
				if h1 != tc.status || h2 != tc.status {
					t.Errorf("%s %s: HTTP/1.1 %d, HTTP/2 %d, want %d", tc.name, tc.target, h1, h2, tc.status)
				}
				want := 0
				if tc.upstream != "" {
					want = 2
				}
				origin.mu.Lock()
				got := origin.reqs[before:]
				origin.mu.Unlock()
				if len(got) != want {
					t.Errorf("%s: origin received %d requests, want %d", tc.name, len(got), want)
				}
				for i, raw := range got {
					if line, _, _ := strings.Cut(raw, "\r\n"); line != "GET "+tc.upstream+" HTTP/1.1" {
						t.Errorf("%s over %s: origin received %q, want target %q", tc.name, [...]string{"HTTP/1.1", "HTTP/2"}[min(i, 1)], line, tc.upstream)
					}
				}
			}
		})
	}
}
