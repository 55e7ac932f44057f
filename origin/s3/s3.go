// Package s3 is an S3-compatible object store (AWS S3, Backblaze B2,
// Cloudflare R2, MinIO, Ceph) as an Outpost origin: a proxy.Upstream that
// maps a request path to an object key, signs a GET or HEAD for it with
// AWS Signature Version 4 (the AWS SDK's signer, github.com/aws/aws-sdk-go-v2/aws/signer/v4)
// and relays the object.
//
// What reaches the store is bounded: only GET and HEAD, only the path
// (never the query, so no listing, ACL or versioning subresource can be
// asked for), and only the fields that select a representation (Range and
// the conditional fields). Nothing of the client's own credentials
// (Authorization, Cookie) is ever forwarded. What comes back is cleaned:
// the store's 403 and 404 (a private bucket answers 403 for a missing key)
// become one plain 404, its error documents and x-amz-* fields never reach
// a client, and the validators (ETag, Last-Modified) and Content-Range are
// kept so that the cache can revalidate and ranges work.
//
// Credentials are held by an aws.CredentialsProvider and are never written
// to a log or a trace.
package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/stats"
)

// Config describes one bucket.
type Config struct {
	// Name is the upstream's name, for errors.
	Name string
	// Bucket is the bucket name. Required.
	Bucket string
	// Region is the signing region ("us-east-1"; "auto" for R2).
	Region string
	// Endpoint is the store's base URL, "https://s3.us-east-1.amazonaws.com"
	// or "http://127.0.0.1:9000".
	Endpoint string
	// PathStyle puts the bucket in the path (endpoint/bucket/key) rather
	// than in the host name (bucket.endpoint/key).
	PathStyle bool
	// URLPrefix is the request path prefix that maps to KeyPrefix; other
	// paths are 404. "" or "/" maps every path.
	URLPrefix string
	// KeyPrefix is prepended to the rest of the path to make the key.
	KeyPrefix string
	// Index, when set, is the object served for a path ending in "/"
	// (an index document); otherwise such paths are 404: a bucket is never
	// listed.
	Index string
	// Credentials sign the requests; nil sends them unsigned (a public
	// bucket).
	Credentials aws.CredentialsProvider
	// Transport makes the requests; nil uses the transport shared by
	// every Origin with the same ConnectTimeout and FirstByteTimeout.
	Transport http.RoundTripper
	// ConnectTimeout bounds a connect; FirstByteTimeout the wait for the
	// response head.
	ConnectTimeout   time.Duration
	FirstByteTimeout time.Duration
	// Counters receive the bucket's figures; nil counts into the Origin's
	// own. The node keeps them across config reloads.
	Counters *Counters
}

// Counters are a bucket's figures for metrics and stats.
type Counters struct {
	Requests atomic.Uint64   // requests sent to the store
	Errors   atomic.Uint64   // of which failed, or answered what is relayed as 502 or 503
	Inflight atomic.Int64    // requests waiting on the store's head now
	Latency  stats.Histogram // time to the store's response head
}

// Origin is a bucket as a proxy.Upstream and its one proxy.Peer.
type Origin struct {
	cfg    Config
	base   *url.URL // endpoint with the bucket in host or path
	addr   string   // for traces: host of the endpoint
	client *http.Client
	signer *v4.Signer
}

// New checks cfg and returns the Origin.
func New(cfg Config) (*Origin, error) {
	if cfg.Bucket == "" {
		return nil, fmt.Errorf("s3 upstream %s: bucket is required", cfg.Name)
	}
	if cfg.Counters == nil {
		cfg.Counters = &Counters{}
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("s3 upstream %s: endpoint %q: want http(s)://host[:port]", cfg.Name, cfg.Endpoint)
	}
	base := &url.URL{Scheme: u.Scheme, Host: u.Host}
	if cfg.PathStyle {
		base.Path = "/" + cfg.Bucket
	} else {
		base.Host = cfg.Bucket + "." + u.Host
	}
	rt := cfg.Transport
	if rt == nil {
		rt = sharedTransport(cfg.ConnectTimeout, cfg.FirstByteTimeout)
	}
	client := &http.Client{
		Transport: rt,
		// A redirect (a bucket in another region) is relayed as the
		// store's failure, never followed with the signature.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	// S3 takes the path as sent: escaped once, here, not again by the signer.
	signer := v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
	return &Origin{cfg: cfg, base: base, addr: base.Host, client: client, signer: signer}, nil
}

// transports are shared by every Origin with the same timeouts: a
// transport pools connections per host, so buckets on one store, and the
// Origins a config reload builds again, reuse the connections open. There
// are as many as distinct timeout pairs ever configured.
var transports struct {
	sync.Mutex
	m map[[2]time.Duration]*http.Transport
}

func sharedTransport(connect, firstByte time.Duration) *http.Transport {
	transports.Lock()
	defer transports.Unlock()
	k := [2]time.Duration{connect, firstByte}
	if t := transports.m[k]; t != nil {
		return t
	}
	d := &net.Dialer{Timeout: connect}
	t := &http.Transport{
		Proxy:                 nil, // never through a proxy named by the environment
		DialContext:           d.DialContext,
		ResponseHeaderTimeout: firstByte,
		MaxIdleConnsPerHost:   64,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   connect,
		DisableCompression:    true, // bodies are relayed as stored
		ForceAttemptHTTP2:     true,
	}
	if transports.m == nil {
		transports.m = map[[2]time.Duration]*http.Transport{}
	}
	transports.m[k] = t
	return t
}

// Pick implements proxy.Upstream: the store is one peer; a failed attempt
// is tried once more.
func (o *Origin) Pick(_ *proxy.Ctx, n int) (proxy.Peer, error) {
	if n > 1 {
		return nil, errNoMoreAttempts
	}
	return o, nil
}

var errNoMoreAttempts = proxy.Errorf(502, proxy.FromUpstream, "object store failed", nil)

// Finish implements proxy.Upstream: a connection failure or a store's 5xx
// (relayed as 502 or 503; S3 asks for a retry with 500 and 503) is tried
// once more.
func (o *Origin) Finish(c *proxy.Ctx, _ proxy.Peer, n int, resp *httphead.Response, err error, _ time.Duration) bool {
	if n > 0 || errors.Is(err, context.Canceled) {
		return false
	}
	if err != nil {
		return true
	}
	return resp.Status == 502 || resp.Status == 503
}

// Addr implements proxy.Peer.
func (o *Origin) Addr() string { return o.addr }

// emptyHash is the payload hash of a request without a body.
var emptyHash = func() string { h := sha256.Sum256(nil); return hex.EncodeToString(h[:]) }()

// forwarded are the request fields sent to the store: those that select
// the representation or make the request conditional.
var forwarded = [...]string{"Range", "If-Range", "If-None-Match", "If-Match", "If-Modified-Since", "If-Unmodified-Since"}

// kept are the response fields relayed from the store.
var kept = [...]string{
	"Content-Type", "Content-Length", "Content-Range", "Content-Encoding", "Content-Language",
	"Content-Disposition", "Cache-Control", "Expires", "ETag", "Last-Modified", "Accept-Ranges",
}

// RoundTrip implements proxy.Peer.
func (o *Origin) RoundTrip(c *proxy.Ctx, req *httphead.Request, _ io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	method := string(req.Method)
	if method != "GET" && method != "HEAD" {
		c.Trace.Add("s3", "method not allowed")
		resp.Header.AddString("Allow", "GET, HEAD")
		return plain(resp, 405, "method not allowed\n"), nil
	}
	key, ok := o.Key(string(req.Path))
	if !ok {
		c.Trace.Add("s3", "no object for this path")
		return plain(resp, 404, "not found\n"), nil
	}
	hr, err := o.request(c, method, key, req)
	if err != nil {
		return nil, err
	}
	hresp, err := o.do(hr)
	if err != nil {
		return nil, fmt.Errorf("s3 %s: %w", o.cfg.Name, err)
	}
	return o.relay(c, hresp, resp), nil
}

// do sends hr to the store, counting it.
func (o *Origin) do(hr *http.Request) (*http.Response, error) {
	n := o.cfg.Counters
	n.Requests.Add(1)
	n.Inflight.Add(1)
	start := time.Now()
	hresp, err := o.client.Do(hr)
	n.Inflight.Add(-1)
	if err != nil {
		n.Errors.Add(1)
	} else {
		n.Latency.Observe(time.Since(start))
	}
	return hresp, err
}

// request builds the signed request for key.
func (o *Origin) request(c *proxy.Ctx, method, key string, req *httphead.Request) (*http.Request, error) {
	u := *o.base
	u.Path = o.base.Path + "/" + key
	u.RawPath = o.base.Path + "/" + escapeKey(key)
	hr, err := http.NewRequestWithContext(c, method, u.String(), nil)
	if err != nil {
		return nil, proxy.Errorf(404, proxy.FromDownstream, "not found", err)
	}
	for _, name := range forwarded {
		if v := req.Header.Peek(name); v != nil {
			hr.Header.Set(name, string(v))
		}
	}
	if o.cfg.Credentials == nil {
		c.Trace.Add("s3-sign", "anonymous")
		return hr, nil
	}
	creds, err := o.cfg.Credentials.Retrieve(c)
	if err != nil {
		// The provider's error says which source failed, not a secret.
		return nil, proxy.Errorf(502, proxy.FromInternal, "object store credentials unavailable", err)
	}
	hr.Header.Set("X-Amz-Content-Sha256", emptyHash)
	if err := o.signer.SignHTTP(c, creds, hr, emptyHash, "s3", o.cfg.Region, time.Now()); err != nil {
		return nil, proxy.Errorf(502, proxy.FromInternal, "signing the object store request", err)
	}
	c.Trace.Add("s3-sign", "sigv4")
	return hr, nil
}

// relay fills resp from the store's answer and returns the body to send.
func (o *Origin) relay(c *proxy.Ctx, hr *http.Response, resp *httphead.Response) io.ReadCloser {
	switch s := hr.StatusCode; {
	case s == 403 || s == 404:
		// A private bucket says 403 for a key that is not there; neither
		// tells a client more than "not found". The store's error code
		// (NoSuchKey, AccessDenied, SignatureDoesNotMatch) is for the trace.
		c.Trace.Add("s3", "store said "+hr.Status[:3]+" "+errorCode(hr.Body)+": 404")
		return plain(resp, 404, "not found\n")
	case s >= 300 && s != 304 && s != 412 && s != 416:
		o.cfg.Counters.Errors.Add(1)
		c.Trace.Add("s3", "store said "+hr.Status[:3]+" "+errorCode(hr.Body)+": 502")
		if s == 503 {
			return plain(resp, 503, "object store busy\n")
		}
		return plain(resp, 502, "object store failed\n")
	}
	resp.Status = hr.StatusCode
	resp.ProtoMajor, resp.ProtoMinor = 1, 1
	for _, name := range kept {
		for _, v := range hr.Header.Values(name) {
			resp.Header.AddString(name, v)
		}
	}
	resp.ContentLength = hr.ContentLength
	if hr.Request.Method == "HEAD" {
		resp.ContentLength = 0
	}
	return hr.Body
}

// errorCode reads the Code of an S3 error document (at most 4 KiB of it)
// and closes the body; "" when there is none.
func errorCode(body io.ReadCloser) string {
	defer body.Close()
	b, _ := io.ReadAll(io.LimitReader(body, 4<<10))
	_, rest, ok := strings.Cut(string(b), "<Code>")
	code, _, ok2 := strings.Cut(rest, "</Code>")
	if !ok || !ok2 || len(code) > 64 {
		return ""
	}
	for _, c := range code {
		// The trace goes into a response field: letters and digits only.
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return ""
		}
	}
	return code
}

// plain fills resp with a short text answer made here.
func plain(resp *httphead.Response, status int, body string) io.ReadCloser {
	resp.Status = status
	resp.ProtoMajor, resp.ProtoMinor = 1, 1
	resp.Header.AddString("Content-Type", "text/plain; charset=utf-8")
	resp.ContentLength = int64(len(body))
	return proxy.NewMemBody([]byte(body))
}

// Key maps a request path (canonical, percent-encoded) to an object key,
// and reports false for paths that map to none: outside URLPrefix, not
// decodable, with a dot segment, or a directory without an index
// document.
func (o *Origin) Key(path string) (string, bool) {
	prefix := o.cfg.URLPrefix
	if prefix == "" {
		prefix = "/"
	}
	rest, ok := strings.CutPrefix(path, prefix)
	if !ok {
		return "", false
	}
	rest = strings.TrimPrefix(rest, "/")
	rest, err := url.PathUnescape(rest)
	if err != nil {
		return "", false
	}
	for seg := range strings.SplitSeq(rest, "/") {
		// Some stores resolve dot segments; none may leave the prefix.
		if seg == "." || seg == ".." {
			return "", false
		}
	}
	key := o.cfg.KeyPrefix + rest
	if key == "" || strings.HasSuffix(key, "/") {
		if o.cfg.Index == "" {
			return "", false
		}
		key += o.cfg.Index
	}
	return key, true
}

// escapeKey percent-encodes a key as S3's canonical URI has it: every
// byte but the unreserved ones and "/".
func escapeKey(key string) string {
	var b strings.Builder
	for i := 0; i < len(key); i++ {
		ch := key[i]
		if 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || strings.IndexByte("-._~/", ch) >= 0 {
			b.WriteByte(ch)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", ch)
	}
	return b.String()
}
