package e2e

import (
	"bytes"
	"crypto/hmac"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/outpost-edge/outpost/internal/testorigin"
)

// The object store of these tests is gofakes3 (github.com/johannesboyne/gofakes3),
// a pure-Go S3-compatible server, on loopback. gofakes3 does not check
// signatures, so sigV4Store puts a SigV4 check in front of it: the request
// as received is signed again with the AWS SDK's signer under the store's
// secret, and the signatures must match. TestSigV4CheckAgreesWithAWSExample
// checks that verifier against AWS's own published example.

const (
	s3Key    = "AKIDOUTPOSTTEST"
	s3Secret = "outpost-test-secret/abcdefghijklmnop"
)

// sigV4Store is an S3-compatible server that refuses requests not signed
// by s3Key/s3Secret for us-east-1 with 403, as S3 does.
type sigV4Store struct {
	backend *s3mem.Backend
	addr    string
	mu      sync.Mutex
	refused int      // requests refused for their signature
	ranges  []string // Range fields of the requests that passed
}

func startS3(t *testing.T, buckets ...string) *sigV4Store {
	t.Helper()
	s := &sigV4Store{backend: s3mem.New()}
	for _, b := range buckets {
		if err := s.backend.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	fake := gofakes3.New(s.backend).Server()
	s.addr = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := verifySigV4(r, s3Key, s3Secret, time.Now()); err != nil {
			s.mu.Lock()
			s.refused++
			s.mu.Unlock()
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(403)
			fmt.Fprintf(w, "<Error><Code>SignatureDoesNotMatch</Code><Message>%s</Message></Error>", err)
			return
		}
		s.mu.Lock()
		s.ranges = append(s.ranges, r.Header.Get("Range"))
		s.mu.Unlock()
		fake.ServeHTTP(w, r)
	}))
	return s
}

func (s *sigV4Store) put(t *testing.T, bucket, key, contentType string, body []byte) {
	t.Helper()
	meta := map[string]string{"Content-Type": contentType, "Last-Modified": time.Now().UTC().Add(-time.Hour).Format(http.TimeFormat)}
	if _, err := s.backend.PutObject(bucket, key, meta, bytes.NewReader(body), int64(len(body)), nil); err != nil {
		t.Fatal(err)
	}
}

func (s *sigV4Store) stats() (refused int, ranges []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.refused, append([]string(nil), s.ranges...)
}

// verifySigV4 checks a header-signed SigV4 request: it rebuilds the
// request from what was received (method, path as sent, query, the signed
// headers only), signs it with the SDK's signer under secret at the
// request's own X-Amz-Date, and compares the signatures.
func verifySigV4(r *http.Request, key, secret string, now time.Time) error {
	auth := r.Header.Get("Authorization")
	rest, ok := strings.CutPrefix(auth, "AWS4-HMAC-SHA256 ")
	if !ok {
		return fmt.Errorf("not signed with SigV4")
	}
	parts := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		parts[k] = v
	}
	if signed := ";" + parts["SignedHeaders"] + ";"; !strings.Contains(signed, ";host;") ||
		!strings.Contains(signed, ";x-amz-content-sha256;") || !strings.Contains(signed, ";x-amz-date;") {
		return fmt.Errorf("host, x-amz-content-sha256 and x-amz-date must be signed")
	}
	scope := strings.Split(parts["Credential"], "/")
	if len(scope) != 5 || scope[0] != key || scope[3] != "s3" || scope[4] != "aws4_request" {
		return fmt.Errorf("bad credential scope")
	}
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil || at.Sub(now).Abs() > 15*time.Minute {
		return fmt.Errorf("bad or skewed X-Amz-Date")
	}
	again, _ := http.NewRequest(r.Method, "http://"+r.Host+"/", nil)
	again.URL.Opaque, _, _ = strings.Cut(r.RequestURI, "?") // the path exactly as sent
	again.URL.RawQuery = r.URL.RawQuery
	for _, h := range strings.Split(parts["SignedHeaders"], ";") {
		if h != "host" {
			again.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	creds := aws.Credentials{AccessKeyID: key, SecretAccessKey: secret}
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	if err := signer.SignHTTP(r.Context(), creds, again, r.Header.Get("X-Amz-Content-Sha256"), "s3", scope[2], at); err != nil {
		return err
	}
	_, want, _ := strings.Cut(again.Header.Get("Authorization"), "Signature=")
	if !hmac.Equal([]byte(want), []byte(parts["Signature"])) {
		return fmt.Errorf("signature does not match")
	}
	return nil
}

// TestSigV4CheckAgreesWithAWSExample runs the store's verifier on the GET
// Object example of AWS's "Signature Calculations for the Authorization
// Header" page: its signature must pass, and fail under another secret or
// with a header changed.
func TestSigV4CheckAgreesWithAWSExample(t *testing.T) {
	req := func(rng string) *http.Request {
		r, _ := http.NewRequest("GET", "http://examplebucket.s3.amazonaws.com/test.txt", nil)
		r.RequestURI = "/test.txt"
		r.Header.Set("Range", rng)
		r.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
		r.Header.Set("X-Amz-Date", "20130524T000000Z")
		r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41")
		return r
	}
	at := time.Date(2013, 5, 24, 0, 1, 0, 0, time.UTC)
	const secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
	if err := verifySigV4(req("bytes=0-9"), "AKIAIOSFODNN7EXAMPLE", secret, at); err != nil {
		t.Fatalf("AWS's example refused: %v", err)
	}
	if verifySigV4(req("bytes=0-9"), "AKIAIOSFODNN7EXAMPLE", secret+"x", at) == nil {
		t.Fatal("AWS's example accepted under a wrong secret")
	}
	if verifySigV4(req("bytes=0-10"), "AKIAIOSFODNN7EXAMPLE", secret, at) == nil {
		t.Fatal("a changed signed header was accepted")
	}
}

// s3Creds writes a shared credentials file with the given secret.
func s3Creds(t *testing.T, secret string) string {
	file := t.TempDir() + "/credentials"
	body := "[default]\naws_access_key_id = " + s3Key + "\naws_secret_access_key = " + secret + "\n"
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

const s3Config = `
upstreams:
  store:
    type: s3
    s3:
      bucket: primary
      endpoint: http://{{S3}}
      path_style: true
      url_prefix: /files/
      key_prefix: pkgs/
      credentials: {source: file, file: "{{CREDS}}"}
  direct:
    type: s3
    s3: {bucket: primary, endpoint: "http://{{S3}}", path_style: true, url_prefix: /direct/, key_prefix: pkgs/, credentials: {source: file, file: "{{CREDS}}"}}
routes:
  - name: ranged
    match: {path_prefix: /direct/}
    upstream: direct
    cache: {enabled: false}
  - name: files
    upstream: store
    cache: {default_ttl: 60s}
`

func TestS3OriginSignsRequestsAndServesObjects(t *testing.T) {
	store := startS3(t, "primary")
	index := []byte(`{"name":"left-pad","versions":{}}`)
	big := bytes.Repeat([]byte("0123456789"), 6000)
	store.put(t, "primary", "pkgs/left-pad.json", "application/json", index)
	store.put(t, "primary", "pkgs/big.bin", "application/octet-stream", big)
	store.put(t, "primary", "secret.txt", "text/plain", []byte("outside the key prefix"))
	store.put(t, "primary", "pkgs/dir/a b+c.txt", "text/plain", []byte("odd key"))
	e := startEdge(t, s3Config, "{{S3}}", store.addr, "{{CREDS}}", s3Creds(t, s3Secret))

	resp, body := get(t, e.URL+"/files/left-pad.json", "X-Outpost-Trace", "1")
	trace := resp.Header.Get("X-Outpost-Trace")
	if resp.StatusCode != 200 || body != string(index) || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("object: %d %q %q; trace %s", resp.StatusCode, resp.Header.Get("Content-Type"), body, trace)
	}
	etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("ETag %q, Last-Modified %q: want the validators kept", etag, lm)
	}
	// Uncached, the origin's decisions are in the client's own trace.
	resp, _ = get(t, e.URL+"/direct/left-pad.json", "X-Outpost-Trace", "1")
	if trace = resp.Header.Get("X-Outpost-Trace"); !strings.Contains(trace, "s3-sign=sigv4") {
		t.Fatalf("trace %s: want a signed request", trace)
	}
	if strings.Contains(trace, s3Secret) || strings.Contains(trace, s3Key) {
		t.Fatalf("trace shows credentials: %s", trace)
	}
	// The validators revalidate (RFC 9110 section 13.1.2).
	if resp, _ := get(t, e.URL+"/files/left-pad.json", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Fatalf("If-None-Match with the object's ETag: %d, want 304", resp.StatusCode)
	}
	for _, path := range []string{"/files/missing.json", "/files/", "/files/sub/", "/elsewhere", "/files/../secret.txt", "/files/%2e%2e/secret.txt"} {
		resp, body := get(t, e.URL+path)
		if resp.StatusCode != 404 || body != "not found\n" {
			t.Errorf("%s: %d %q, want a plain 404", path, resp.StatusCode, body)
		}
		for name := range resp.Header {
			if strings.HasPrefix(strings.ToLower(name), "x-amz") {
				t.Errorf("%s: store field %s reached the client", path, name)
			}
		}
	}
	// A key that needs escaping is signed as S3 has it.
	if resp, body := get(t, e.URL+"/files/dir/a%20b+c.txt"); resp.StatusCode != 200 || body != "odd key" {
		t.Fatalf("escaped key: %d %q", resp.StatusCode, body)
	}
	// HEAD says the length a GET would have (RFC 9110 section 9.3.2).
	req, _ := http.NewRequest("HEAD", e.URL+"/direct/big.bin", nil)
	if resp, err := testClient.Do(req); err != nil || resp.StatusCode != 200 || resp.ContentLength != int64(len(big)) {
		t.Fatalf("HEAD: %v %v", resp, err)
	}
	// A range reaches the store as asked (RFC 9110 section 14.2).
	resp, body = get(t, e.URL+"/direct/big.bin", "Range", "bytes=100-199")
	if resp.StatusCode != 206 || body != string(big[100:200]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes 100-199/%d", len(big)) {
		t.Fatalf("range: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Range"), body)
	}
	refused, ranges := store.stats()
	if refused != 0 || !containsString(ranges, "bytes=100-199") {
		t.Fatalf("store refused %d requests, saw ranges %q", refused, ranges)
	}
	// A method other than GET and HEAD never reaches the store.
	req, _ = http.NewRequest("DELETE", e.URL+"/files/left-pad.json", nil)
	if resp, err := testClient.Do(req); err != nil || resp.StatusCode != 405 {
		t.Fatalf("DELETE: %v %v, want 405", resp, err)
	}
	// The buckets are in /metrics and /stats, with the requests they got
	// (the direct route's: the object, HEAD and the range; no errors).
	if v := metric(t, e, `outpost_upstream_requests_total{server="`+store.addr+`",upstream="direct"}`); v != 3 {
		t.Errorf("outpost_upstream_requests_total of the direct bucket: %v, want 3", v)
	}
	if v := metric(t, e, `outpost_upstream_duration_seconds_count{server="`+store.addr+`",upstream="direct"}`); v != 3 {
		t.Errorf("latency samples of the direct bucket: %v, want 3", v)
	}
	_, body = get(t, e.Admin+"/stats", "Authorization", adminAuth)
	var st struct {
		Edge struct {
			Buckets map[string]struct{ Requests, Errors uint64 } `json:"buckets"`
		} `json:"edge"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.Edge.Buckets["direct"].Requests != 3 || st.Edge.Buckets["store"].Requests == 0 {
		t.Errorf("/stats buckets %+v (%v), want direct with 3 requests and store with some", st.Edge.Buckets, err)
	}
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func TestS3OriginWithWrongSecretIsRefusedByTheStore(t *testing.T) {
	store := startS3(t, "primary")
	store.put(t, "primary", "pkgs/a.txt", "text/plain", []byte("a"))
	e := startEdge(t, s3Config, "{{S3}}", store.addr, "{{CREDS}}", s3Creds(t, "not-the-secret"))
	resp, body := get(t, e.URL+"/direct/a.txt", "X-Outpost-Trace", "1")
	if resp.StatusCode != 404 || body != "not found\n" {
		t.Fatalf("wrong secret: %d %q, want the store's 403 as a plain 404", resp.StatusCode, body)
	}
	if refused, _ := store.stats(); refused == 0 {
		t.Fatal("the store never refused a signature")
	}
	if trace := resp.Header.Get("X-Outpost-Trace"); !strings.Contains(trace, "store said 403 SignatureDoesNotMatch") || strings.Contains(trace, "not-the-secret") {
		t.Fatalf("trace %s: want the store's 403 noted, and no secret", trace)
	}
}

func TestS3CredentialsFromTheEnvironment(t *testing.T) {
	store := startS3(t, "primary")
	store.put(t, "primary", "pkgs/a.txt", "text/plain", []byte("from env"))
	t.Setenv("AWS_ACCESS_KEY_ID", s3Key)
	t.Setenv("AWS_SECRET_ACCESS_KEY", s3Secret)
	cfg := strings.ReplaceAll(s3Config, `credentials: {source: file, file: "{{CREDS}}"}`, "credentials: {source: env}")
	e := startEdge(t, cfg, "{{S3}}", store.addr)
	if resp, body := get(t, e.URL+"/files/a.txt"); resp.StatusCode != 200 || body != "from env" {
		t.Fatalf("env credentials: %d %q", resp.StatusCode, body)
	}
}

// TestFallbackChainPrimaryArchiveApplication: a route's primary bucket,
// then its archive bucket on 404 or 403, then the application; the hop
// that answered is in the trace and in Cache-Status.
func TestFallbackChainPrimaryArchiveApplication(t *testing.T) {
	store := startS3(t, "primary", "archive")
	store.put(t, "primary", "a.txt", "text/plain", []byte("primary"))
	store.put(t, "archive", "b.txt", "text/plain", []byte("archive"))
	app := testorigin.New(t)
	app.Respond("/c.txt", 200, http.Header{"Cache-Control": {"max-age=60"}}, "application")
	e := startEdge(t, `
upstreams:
  primary:
    type: s3
    s3: {bucket: primary, endpoint: "http://{{S3}}", path_style: true, credentials: {source: file, file: "{{CREDS}}"}}
  archive:
    type: s3
    s3: {bucket: archive, endpoint: "http://{{S3}}", path_style: true, credentials: {source: file, file: "{{CREDS}}"}}
  app:
    servers: [{addr: "{{APP}}"}]
routes:
  - name: nocache
    match: {path_prefix: /nocache/}
    upstream: primary
    fallback: [archive, app]
    cache: {enabled: false}
  - name: files
    upstream: primary
    fallback: [archive, app]
    cache: {default_ttl: 60s}
`, "{{S3}}", store.addr, "{{CREDS}}", s3Creds(t, s3Secret), "{{APP}}", app.Addr())
	for _, tt := range []struct{ path, body, hop string }{
		{"/a.txt", "primary", "primary"},
		{"/b.txt", "archive", "archive"},
		{"/c.txt", "application", "app"},
	} {
		resp, body := get(t, e.URL+tt.path, "X-Outpost-Trace", "1")
		trace, cs := resp.Header.Get("X-Outpost-Trace"), resp.Header.Get("Cache-Status")
		if resp.StatusCode != 200 || body != tt.body {
			t.Fatalf("%s: %d %q, want %q; trace %s", tt.path, resp.StatusCode, body, tt.body, trace)
		}
		if !strings.Contains(trace, "origin="+tt.hop) || !strings.Contains(cs, `detail="origin=`+tt.hop+`"`) {
			t.Fatalf("%s: trace %s, Cache-Status %q: want origin=%s in both", tt.path, trace, cs, tt.hop)
		}
		// The next request is a hit on what the hop answered, which
		// still says where it came from.
		resp, body = get(t, e.URL+tt.path)
		if cs := resp.Header.Get("Cache-Status"); body != tt.body || !strings.Contains(cs, "; hit") || !strings.Contains(cs, `detail="origin=`+tt.hop+`"`) {
			t.Fatalf("%s again: %q, Cache-Status %q: want a hit from %s", tt.path, body, cs, tt.hop)
		}
		if resp.Header.Get("Outpost-Origin-Hop") != "" {
			t.Fatalf("%s: the chain's internal field reached the client", tt.path)
		}
	}
	// Uncached, the walk itself is in the client's trace.
	resp, _ := get(t, e.URL+"/nocache/d.txt", "X-Outpost-Trace", "1")
	if trace := resp.Header.Get("X-Outpost-Trace"); resp.StatusCode != 404 || !strings.Contains(trace, "fallback=archive (previous hop said 404)") || !strings.Contains(trace, "fallback=app") || !strings.Contains(trace, "origin=app") {
		t.Fatalf("missing everywhere: %d, trace %s: want the application's 404 after both buckets", resp.StatusCode, trace)
	}
	if refused, _ := store.stats(); refused != 0 {
		t.Fatalf("store refused %d signatures", refused)
	}
}

// TestFallbackChainKeepsARequestWithItsBody: a POST whose body went to the
// first hop is not sent on without it.
func TestFallbackChainKeepsARequestWithItsBody(t *testing.T) {
	first, second := testorigin.New(t), testorigin.New(t)
	first.Respond("/p", 404, nil, "first")
	second.Echo("/p")
	e := startEdge(t, `
upstreams:
  first:
    servers: [{addr: "{{A}}"}]
  second:
    servers: [{addr: "{{B}}"}]
routes:
  - name: p
    upstream: first
    fallback: [second]
    cache: {enabled: false}
`, "{{A}}", first.Addr(), "{{B}}", second.Addr())
	req, _ := http.NewRequest("POST", e.URL+"/p", strings.NewReader("payload"))
	req.Header.Set("X-Outpost-Trace", "1")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if trace := resp.Header.Get("X-Outpost-Trace"); resp.StatusCode != 404 || !strings.Contains(trace, "fallback=not taken") || !strings.Contains(trace, "origin=first") {
		t.Fatalf("POST: %d, trace %s: want the first hop's 404", resp.StatusCode, trace)
	}
	if resp, body := get(t, e.URL+"/p"); resp.StatusCode != 200 || body != "" {
		t.Fatalf("GET without a body: %d %q, want the second hop's echo", resp.StatusCode, body)
	}
}

// TestReloadTurnsAnUpstreamIntoABucket: a reload may change an upstream's
// type; requests then go to the bucket, and the old servers' backend is
// retired.
func TestReloadTurnsAnUpstreamIntoABucket(t *testing.T) {
	store := startS3(t, "primary")
	store.put(t, "primary", "a.txt", "text/plain", []byte("from the bucket"))
	app := testorigin.New(t)
	app.Respond("/a.txt", 200, nil, "from the app")
	e := startEdge(t, `
upstreams:
  origin:
    servers: [{addr: "{{APP}}"}]
routes:
  - name: r
    upstream: origin
    cache: {enabled: false}
`, "{{APP}}", app.Addr())
	if _, body := get(t, e.URL+"/a.txt"); body != "from the app" {
		t.Fatalf("before: %q", body)
	}
	file, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	bucket := `type: s3
    s3: {bucket: primary, endpoint: "http://` + store.addr + `", path_style: true, credentials: {source: file, file: "` + s3Creds(t, s3Secret) + `"}}`
	cfg := strings.Replace(string(file), `servers: [{addr: "`+app.Addr()+`"}]`, bucket, 1)
	if status, body := postReload(t, e, cfg); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	if _, body := get(t, e.URL+"/a.txt"); body != "from the bucket" {
		t.Fatalf("after: %q", body)
	}
	if _, stats := get(t, e.Admin+"/stats", "Authorization", adminAuth); strings.Contains(stats, app.Addr()) {
		t.Fatalf("the retired servers are still in /stats: %s", stats)
	}
}

// TestFallbackChainPassesADeadHop: a hop that gives no answer (its server
// refuses connections) sends the request on.
func TestFallbackChainPassesADeadHop(t *testing.T) {
	store := startS3(t, "archive")
	store.put(t, "archive", "a.txt", "text/plain", []byte("archived"))
	l := listen(t)
	dead := l.Addr().String()
	l.Close()
	e := startEdge(t, `
upstreams:
  primary:
    servers: [{addr: "{{DEAD}}"}]
    connect_timeout: 500ms
  archive:
    type: s3
    s3: {bucket: archive, endpoint: "http://{{S3}}", path_style: true, credentials: {source: file, file: "{{CREDS}}"}}
routes:
  - name: r
    upstream: primary
    fallback: [archive]
    cache: {enabled: false}
`, "{{DEAD}}", dead, "{{S3}}", store.addr, "{{CREDS}}", s3Creds(t, s3Secret))
	resp, body := get(t, e.URL+"/a.txt", "X-Outpost-Trace", "1")
	if trace := resp.Header.Get("X-Outpost-Trace"); resp.StatusCode != 200 || body != "archived" || !strings.Contains(trace, "fallback=archive (previous hop failed)") {
		t.Fatalf("dead primary: %d %q, trace %s", resp.StatusCode, body, trace)
	}
}
