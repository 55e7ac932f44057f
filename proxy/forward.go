package proxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// fetch runs the upstream phases for req: it prepares the upstream request,
// then tries servers until one answers or the Upstream gives up.
func (e *Engine) fetch(c *Ctx, req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
	if c.Route.Upstream == nil {
		return nil, nil, ErrNoUpstream
	}
	out := e.prepare(c, req)
	if e.upReq != nil {
		if err := e.upReq.UpstreamRequest(c, out); err != nil {
			return nil, nil, err
		}
	}
	var body io.Reader
	var replay []byte // the whole body, when kept for retries
	if req == c.Request && (c.session != nil || c.body != nil) && (req.ContentLength != 0 || req.Chunked) {
		src := c.body // a filter's, or a callout's (which has no session)
		if src == nil {
			src = c.session.Body()
		}
		up := c.newUpBody(src)
		body = up
		if c.Route.Replayable(req) {
			// Read to the end (one byte past the length finds it), so
			// the trailers have come before the first attempt.
			var err error
			if replay, err = io.ReadAll(io.LimitReader(up, req.ContentLength+1)); err != nil {
				return nil, nil, err
			}
		}
	}
	resp := &c.resp
	var last io.ReadCloser // the body of a response that asked for a retry
	var lastErr error
	for attempt := 0; ; attempt++ {
		peer, err := c.Route.Upstream.Pick(c, attempt)
		if err != nil {
			if attempt == 0 {
				return nil, nil, err
			}
			// Nowhere left to retry: the last answer is the answer.
			if last != nil {
				return e.received(c, resp, last)
			}
			return nil, nil, upstreamErr(lastErr)
		}
		if last != nil {
			last.Close()
			last = nil
		}
		if replay != nil {
			c.up.replay(bytes.NewReader(replay))
		}
		c.Attempts = attempt + 1
		c.Upstream = peer.Addr()
		c.Trace.Add("upstream", c.Upstream)
		resp.Reset()
		start := time.Now()
		rb, err := peer.RoundTrip(c, out, body, resp)
		if c.Route.Upstream.Finish(c, peer, attempt, respOrNil(resp, err), err, time.Since(start)) {
			last, lastErr = rb, err
			c.Trace.Add("retry", retryReason(resp, err))
			continue
		}
		if err != nil {
			return nil, nil, upstreamErr(err)
		}
		return e.received(c, resp, rb)
	}
}

func respOrNil(resp *httphead.Response, err error) *httphead.Response {
	if err != nil {
		return nil
	}
	return resp
}

func retryReason(resp *httphead.Response, err error) string {
	if err != nil {
		return "error"
	}
	return statusText(resp.Status)
}

// received cleans the origin's response and runs UpstreamResponse.
func (e *Engine) received(c *Ctx, resp *httphead.Response, body io.ReadCloser) (*httphead.Response, io.ReadCloser, error) {
	if resp.Status == 101 && !e.switchedAsAsked(c, resp) {
		body.Close()
		return nil, nil, Errorf(502, FromUpstream, "upstream switched to a protocol not asked for", nil)
	}
	if resp.Status == 101 {
		// The upgrade fields must reach the client; the rest of the
		// hop-by-hop set must not.
		resp.Header.DelFunc(func(name, _ []byte) bool {
			return httphead.IsHopByHop(name) && !httphead.EqualFold(name, "Connection") && !httphead.EqualFold(name, "Upgrade")
		})
	} else {
		resp.Header.RemoveHopByHop()
		resp.Header.Del(traceName) // only this node's trace goes out, and none is stored
		if c.out.IsMethod("HEAD") {
			// A HEAD response has no body but says the length a GET
			// would have (RFC 9110 section 9.3.2): keep that, not the
			// framing's zero, for the session to send.
			if n, ok := httphead.ParseDecimal(resp.Header.Peek("Content-Length")); ok {
				resp.ContentLength = n
			}
		}
		resp.Header.Del("Content-Length")
		if len(resp.TransferCodings) > 0 {
			if err := relayCodings(c); err != nil {
				body.Close()
				return nil, nil, err
			}
		}
	}
	if e.upResp != nil {
		if err := e.upResp.UpstreamResponse(c, resp); err != nil {
			body.Close()
			return nil, nil, err
		}
	}
	return resp, body, nil
}

// relayCodings decides for a body that still carries transfer codings
// other than chunked, which Outpost cannot decode (RFC 9112 section 6.1):
// it is relayed coded, and named in the client's Transfer-Encoding before
// chunked, which only HTTP/1.1 has. HTTP/1.0 forbids the field (section
// 6.1) and HTTP/2 has no transfer codings (RFC 9113 section 8.2.2): those
// clients get a 502, not a body they would take for the representation.
func relayCodings(c *Ctx) error {
	if c.Request.ProtoMajor == 1 && c.Request.ProtoMinor >= 1 {
		c.Trace.Add("transfer-coding", "relayed")
		return nil
	}
	c.Trace.Add("transfer-coding", "the client's protocol cannot carry it")
	return Errorf(502, FromUpstream, "upstream transfer coding the client cannot receive", nil)
}

func upstreamErr(err error) error {
	var e *Error
	switch {
	case errors.As(err, &e):
		return err // already says whose fault it is (a bad request body: 400)
	case errors.Is(err, context.DeadlineExceeded):
		return Errorf(504, FromUpstream, "upstream timed out", err)
	case errors.Is(err, context.Canceled):
		return Errorf(499, FromDownstream, "client went away", err)
	}
	return Errorf(502, FromUpstream, "upstream failed", err)
}

// prepare builds the upstream request from req: hop-by-hop fields and the
// fields of the strip set removed, the forwarding fields (Forwarded,
// X-Forwarded-*, Via, X-Request-Id) set.
func (e *Engine) prepare(c *Ctx, req *httphead.Request) *httphead.Request {
	out := &c.out
	copyRequest(out, req)
	h := &out.Header
	h.RemoveHopByHop()
	h.Del("Content-Length")
	if req.Chunked || req.ProtoMajor >= 2 && req.ContentLength != 0 {
		// The trailer fields the client declares go on with a body that
		// can carry them (RFC 9110 section 6.6.2; an HTTP/1.1 body with a
		// Content-Length cannot): an HTTP/2 server may keep only
		// declared ones, and an HTTP/1.1 origin gets the body chunked.
		req.Header.Values("Trailer", func(v []byte) bool {
			h.Add(trailerField, v)
			return true
		})
	}
	if req.Header.HasToken("TE", "trailers") {
		h.AddString("TE", "trailers") // gRPC needs it end to end; it is the one TE value HTTP/2 allows
	}
	h.DelFunc(func(name, _ []byte) bool { return e.strip.has(name) })
	if req.Upgrade {
		h.AddString("Connection", "Upgrade")
		h.Add([]byte("Upgrade"), req.Header.Peek("Upgrade"))
	}
	trusted := e.opts.Trusted != nil && e.opts.Trusted(c.Peer.Addr())
	ip := c.Peer.Addr().Unmap()
	b := c.scratch[:0]
	if prior := req.Header.Peek("X-Forwarded-For"); trusted && len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	b = ip.AppendTo(b)
	c.scratch = b
	h.Del("X-Forwarded-For")
	h.Add([]byte("X-Forwarded-For"), b)
	setForwarded(c, h, req, ip.Is6(), trusted)
	if !trusted || !h.Has("X-Forwarded-Proto") {
		// A TLS-terminating balancer knows the client's scheme; this
		// hop only sees its own.
		h.Set("X-Forwarded-Proto", scheme(req))
	}
	h.Del("X-Forwarded-Host")
	h.Add([]byte("X-Forwarded-Host"), req.Host)
	e.addVia(h, req.ProtoMajor, req.ProtoMinor)
	h.Del("X-Request-Id")
	h.Add([]byte("X-Request-Id"), c.idBuf)
	return out
}

var trailerField = []byte("Trailer")

// setForwarded writes the RFC 7239 Forwarded field for this hop. It
// builds the value in c.scratch (Header.Add copies it).
func setForwarded(c *Ctx, h *httphead.Header, req *httphead.Request, v6, trusted bool) {
	b := c.scratch[:0]
	if prior := req.Header.Peek("Forwarded"); trusted && len(prior) > 0 {
		b = append(append(b, prior...), ", "...)
	}
	b = append(b, "for="...)
	if v6 {
		b = append(b, `"[`...)
		b = c.Peer.Addr().Unmap().AppendTo(b)
		b = append(b, `]"`...)
	} else {
		b = c.Peer.Addr().Unmap().AppendTo(b)
	}
	b = append(append(b, ";proto="...), scheme(req)...)
	if len(req.Host) > 0 {
		b = append(append(append(b, `;host="`...), req.Host...), '"')
	}
	c.scratch = b
	h.Del("Forwarded")
	h.Add([]byte("Forwarded"), b)
}

func scheme(req *httphead.Request) string {
	if string(req.Scheme) == "https" {
		return "https"
	}
	return "http"
}

var statusTexts [600]string

func init() {
	for i := range statusTexts {
		statusTexts[i] = strconv.Itoa(i)
	}
}

// statusText formats a status code without allocating.
func statusText(s int) string {
	if s >= 0 && s < len(statusTexts) {
		return statusTexts[s]
	}
	return "invalid"
}
