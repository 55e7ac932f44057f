// Package transform edits response bodies on their way from an origin,
// before the cache stores them, so that the work is done once per object
// (and per content coding), not per request:
//
//   - Rewrite replaces strings in the body as it streams (a registry's
//     JSON naming its own host, rewritten to the edge's), decoding a
//     gzip, br or zstd body first; the ETag becomes weak, since the
//     bytes are no longer the origin's.
//   - Compress encodes a text response with the coding the request
//     prefers (br, zstd or gzip by Accept-Encoding weight; see
//     httphead.PreferredCoding), adds Vary: Accept-Encoding, and suffixes
//     the entity tag with the coding ("abc" becomes "abc-br"): a strong
//     validator names one sequence of bytes, and the compressed one is
//     another (RFC 9110 section 8.8.3). The suffix is taken off again in
//     If-None-Match sent to the origin, and put back on its 304.
//
// Behind a cache, a fill asks for one coding (the cache reduces
// Accept-Encoding to br, zstd, gzip or none), so each coding is made once
// per object and stored as its own variant; ranges are then served from
// the stored, compressed bytes, which is the representation the client
// selected (RFC 9110 section 14.1). Partial responses (206) and responses
// marked no-transform are never touched.
package transform

import (
	"bytes"
	"io"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Compress says which responses are compressed.
type Compress struct {
	// Types are media types ("text/html"), type wildcards ("text/*") and
	// structured syntax suffixes ("+json").
	Types []string
	// MinSize is the smallest body compressed, when its length is known.
	MinSize int64
}

// Rewrite says which responses are rewritten, and how.
type Rewrite struct {
	Types   []string // as Compress.Types
	Replace []Replacement
}

// Rules are what a route does to its responses; nil parts are off.
type Rules struct {
	Compress *Compress
	Rewrite  *Rewrite
}

// Upstream wraps a route's upstream so that its responses go through the
// rules.
type Upstream struct {
	inner proxy.Upstream
	rules Rules
}

// Wrap returns up with the rules applied to its responses.
func Wrap(up proxy.Upstream, rules Rules) *Upstream {
	return &Upstream{inner: up, rules: rules}
}

// peer is the upstream's peer with the rules around its round trip; one
// per connection, reused by its requests.
type peer struct {
	inner proxy.Peer
	rules *Rules
	// unsuffixed is the coding taken off If-None-Match for this request;
	// a retry sends the request already edited, so it is kept here.
	unsuffixed string
}

var peerKey = proxy.NewKey[*peer]()

// Pick implements proxy.Upstream.
func (u *Upstream) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	p, err := u.inner.Pick(c, n)
	if err != nil {
		return nil, err
	}
	w, ok := peerKey.Get(c)
	if !ok {
		w = &peer{}
		peerKey.Set(c, w)
	}
	w.inner, w.rules = p, &u.rules
	if n == 0 {
		w.unsuffixed = ""
	}
	return w, nil
}

// Finish implements proxy.Upstream.
func (u *Upstream) Finish(c *proxy.Ctx, p proxy.Peer, n int, resp *httphead.Response, err error, took time.Duration) bool {
	return u.inner.Finish(c, p.(*peer).inner, n, resp, err, took)
}

// Addr implements proxy.Peer.
func (p *peer) Addr() string { return p.inner.Addr() }

// RoundTrip implements proxy.Peer.
func (p *peer) RoundTrip(c *proxy.Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	coding := ""
	if p.rules.Compress != nil {
		coding = httphead.PreferredCoding(&req.Header)
		if found := unsuffixConditional(&req.Header); found != "" {
			p.unsuffixed = found
		}
	}
	rb, err := p.inner.RoundTrip(c, req, body, resp)
	if err != nil || resp.Status == 101 {
		return rb, err
	}
	if resp.Status == 304 && p.unsuffixed != "" {
		// The origin confirmed the identity tag: the stored compressed
		// variant keeps its own.
		suffixETag(&resp.Header, p.unsuffixed)
	}
	if resp.Status != 200 {
		return rb, nil
	}
	if cc := resp.Header.Peek("Cache-Control"); cc != nil && httphead.ListHas(cc, "no-transform") {
		c.Trace.Add("transform", "no-transform")
		return rb, nil
	}
	head := string(req.Method) == "HEAD"
	var buf [64]byte
	mediaType := mediaTypeOf(resp.Header.Peek("Content-Type"), &buf)
	size := resp.ContentLength
	if rw := p.rules.Rewrite; rw != nil && typeListed(rw.Types, mediaType) {
		rb = rewrite(c, rw, resp, rb, head)
	}
	if cm := p.rules.Compress; cm != nil && typeListed(cm.Types, mediaType) && !AlreadyCompressed(string(mediaType)) {
		rb = compress(c, cm, resp, rb, coding, size, head)
	}
	return rb, nil
}

// rewrite replaces strings in the body, decoding it first if the origin
// encoded it.
func rewrite(c *proxy.Ctx, rw *Rewrite, resp *httphead.Response, rb io.ReadCloser, head bool) io.ReadCloser {
	if enc := string(resp.Header.Peek("Content-Encoding")); enc != "" && enc != "identity" {
		if head {
			resp.Header.Del("Content-Encoding")
		} else {
			dec, err := newDecodeReader(rb, strings.ToLower(enc))
			if err != nil {
				c.Trace.Add("rewrite", "skipped: "+err.Error())
				return rb
			}
			rb = dec
			resp.Header.Del("Content-Encoding")
			c.Trace.Add("rewrite-decode", enc)
		}
	}
	newBody(resp)
	weakenETag(&resp.Header)
	c.Trace.Add("rewrite", "on")
	if head {
		return rb
	}
	return newReplaceReader(rb, rw.Replace)
}

// compress encodes the body of a response of a listed type with coding.
// Whatever it does, a body that other requests could get coded differently
// says so in Vary.
func compress(c *proxy.Ctx, cm *Compress, resp *httphead.Response, rb io.ReadCloser, coding string, size int64, head bool) io.ReadCloser {
	switch enc := resp.Header.Peek("Content-Encoding"); {
	case len(enc) > 0 && !httphead.EqualFold(enc, "identity"):
		addVary(&resp.Header) // the origin coded it for this request's Accept-Encoding
		c.Trace.Add("compress", "coded by the origin")
		return rb
	case size >= 0 && size < cm.MinSize:
		c.Trace.Add("compress", "below min_size")
		return rb
	}
	addVary(&resp.Header)
	if coding == "" {
		c.Trace.Add("compress", "identity: no coding accepted")
		return rb
	}
	newBody(resp)
	resp.Header.Set("Content-Encoding", coding)
	suffixETag(&resp.Header, coding)
	c.Trace.Add("compress", coding)
	if head {
		return rb
	}
	return newEncodeReader(rb, coding)
}

// newBody drops what described the origin's bytes: their length and
// digests.
func newBody(resp *httphead.Response) {
	resp.ContentLength = -1
	resp.Header.Del("Content-Length")
	resp.Header.Del("Content-MD5")
	resp.Header.Del("Content-Digest")
}

// addVary adds Accept-Encoding to Vary unless it is there (or Vary is *).
func addVary(h *httphead.Header) {
	listed := false
	h.Values("Vary", func(v []byte) bool {
		listed = httphead.ListHas(v, "Accept-Encoding") || httphead.ListHas(v, "*")
		return !listed
	})
	if !listed {
		h.AddString("Vary", "Accept-Encoding")
	}
}

// AlreadyCompressed reports whether a media type's bytes are compressed
// by its own format (images other than SVG, audio, video, archives, WOFF
// fonts), so that a content coding would only cost CPU.
func AlreadyCompressed(mediaType string) bool {
	major, minor, _ := strings.Cut(mediaType, "/")
	switch major {
	case "image":
		return minor != "svg+xml" && minor != "bmp" && minor != "x-icon" && minor != "vnd.microsoft.icon"
	case "audio", "video":
		return true
	case "font":
		return minor == "woff" || minor == "woff2"
	}
	switch minor {
	case "zip", "gzip", "x-gzip", "zstd", "x-bzip2", "x-xz", "x-7z-compressed", "x-rar-compressed", "pdf", "octet-stream":
		return true
	}
	return false
}

// typeListed reports whether mediaType matches a list entry: the type
// itself, "major/*", or a "+suffix".
func typeListed(list []string, mediaType []byte) bool {
	if len(mediaType) == 0 {
		return false
	}
	mt := mediaType
	for _, t := range list {
		switch {
		case string(mt) == t:
			return true
		case strings.HasSuffix(t, "/*") && len(mt) >= len(t)-1 && string(mt[:len(t)-1]) == t[:len(t)-1]:
			return true
		case strings.HasPrefix(t, "+") && len(mt) >= len(t) && string(mt[len(mt)-len(t):]) == t:
			return true
		}
	}
	return false
}

// mediaTypeOf puts the lower-case type/subtype of a Content-Type in buf
// and returns it, or nil when the field has none (missing, malformed, or
// longer than buf). It reads the type as mime.ParseMediaType does but
// without its allocations, as it runs for every response; the
// parameters are not looked at.
func mediaTypeOf(ct []byte, buf *[64]byte) []byte {
	if i := bytes.IndexByte(ct, ';'); i >= 0 {
		ct = ct[:i]
	}
	ct = httphead.TrimOWS(ct)
	slash := bytes.IndexByte(ct, '/')
	if slash <= 0 || slash == len(ct)-1 || len(ct) > len(buf) {
		return nil
	}
	for i, c := range ct {
		if i != slash && !httphead.IsTokenChar(c) {
			return nil
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(ct)]
}

// codingSuffixes are the entity-tag suffixes Compress adds.
var codingSuffixes = [...]string{"-br\"", "-zstd\"", "-gzip\""}

// suffixETag appends "-coding" inside the ETag's quotes.
func suffixETag(h *httphead.Header, coding string) {
	tag := h.Peek("ETag")
	if len(tag) < 2 || tag[len(tag)-1] != '"' || bytes.HasSuffix(tag, []byte("-"+coding+`"`)) {
		return
	}
	h.Set("ETag", string(tag[:len(tag)-1])+"-"+coding+`"`)
}

// weakenETag makes a strong ETag weak.
func weakenETag(h *httphead.Header) {
	if tag := h.Peek("ETag"); len(tag) > 0 && tag[0] == '"' {
		h.Set("ETag", "W/"+string(tag))
	}
}

// unsuffixConditional takes the coding suffixes off the tags of
// If-None-Match, so the origin, which never saw them, can match; it
// returns the coding taken off, "" when none was.
func unsuffixConditional(h *httphead.Header) string {
	v := h.Peek("If-None-Match")
	if v == nil || !bytes.Contains(v, []byte(`-`)) {
		return ""
	}
	found := ""
	var out []byte
	for len(v) > 0 {
		i := bytes.IndexByte(v, ',')
		item := v
		if i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			v = nil
		}
		item = httphead.TrimOWS(item)
		for _, s := range codingSuffixes {
			if bytes.HasSuffix(item, []byte(s)) {
				found = s[1 : len(s)-1]
				item = append(item[:len(item)-len(s):len(item)-len(s)], '"')
				break
			}
		}
		if len(out) > 0 {
			out = append(out, ", "...)
		}
		out = append(out, item...)
	}
	if found != "" {
		h.Set("If-None-Match", string(out))
	}
	return found
}
