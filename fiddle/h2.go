package fiddle

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"golang.org/x/net/http2"

	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/server"
)

// exchangeH2 sends the step as an HTTP/2 request over a loopback
// connection served by the production HTTP/2 session (h2.Server, as the
// listeners use it), with each stream checked as the server checks it
// (server.CheckStream). The client is x/net's HTTP/2 client.
func (r *runner) exchangeH2(ctx context.Context, s *Step, u *url.URL, l conn, res *Result) (*proxy.Ctx, error) {
	if l.srv == nil { // cleartext: h2c with prior knowledge
		var err error
		if l.srv, l.cli, err = loopbackPair(); err != nil {
			return nil, err
		}
	}
	lim := server.Limits{MaxHeaderBytes: int(r.cfg.Limits.MaxHeaderBytes), MaxHeaders: r.cfg.Limits.MaxHeaders,
		MaxBodyBytes: int64(r.cfg.Limits.MaxBodyBytes)}
	paths := r.cfg.Proxy.Paths()
	var mu sync.Mutex
	var c *proxy.Ctx
	var serveErr error
	serve := func(sctx context.Context, sess proxy.Session, _ **proxy.Ctx) error {
		pc := r.eng.NewCtx()
		pc.Trace.Follow = r.follow
		mu.Lock()
		c = pc
		mu.Unlock()
		var err error
		if cerr := server.CheckStream(sess, paths, lim); cerr != nil {
			pc.Trace.Add("reject", cerr.Error())
			err = r.eng.Reject(sctx, sess, cerr)
		} else {
			err = r.eng.Serve(sctx, sess, pc)
		}
		mu.Lock()
		serveErr = err
		mu.Unlock()
		return err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.h2.ServeConn(ctx, l.srv, l.client, l.tls, l.ja4, "", serve)
	}()
	cerr := r.roundTripH2(ctx, s, u, l.cli, res)
	l.cli.Close()
	<-done
	mu.Lock()
	defer mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("the HTTP/2 session served no stream: %v", cerr)
	}
	if serveErr == nil {
		serveErr = cerr
	}
	return c, serveErr
}

// roundTripH2 is the client's side: one request, the whole response read.
func (r *runner) roundTripH2(ctx context.Context, s *Step, u *url.URL, nc net.Conn, res *Result) error {
	cc, err := (&http2.Transport{AllowHTTP: true}).NewClientConn(nc)
	if err != nil {
		return fmt.Errorf("HTTP/2 client: %w", err)
	}
	defer cc.Close()
	req, err := http.NewRequestWithContext(ctx, cmpOr(s.Method, "GET"), u.String(), strings.NewReader(s.Body))
	if err != nil {
		return fmt.Errorf("HTTP/2 request: %w", err)
	}
	for k, v := range s.Headers {
		switch {
		case strings.EqualFold(k, "Host"):
			req.Host = v
		case strings.EqualFold(k, "Content-Length"):
		default:
			req.Header.Set(k, v)
		}
	}
	if s.Body == "" {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	res.Request.Headers = flatten(req.Header)
	res.Request.Headers[":authority"] = cmpOr(req.Host, u.Host)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return fmt.Errorf("HTTP/2 exchange: %w", err)
	}
	defer resp.Body.Close()
	var rec session
	_, err = io.Copy(&rec, resp.Body)
	h := flatten(resp.Header)
	if resp.ContentLength >= 0 && h["Content-Length"] == "" {
		h["Content-Length"] = itoa(resp.ContentLength)
	}
	res.Response = ClientReply{Status: resp.StatusCode, Headers: h, Body: rec.out.String(), BodyBytes: rec.n}
	if err != nil {
		return fmt.Errorf("HTTP/2 response body: %w", err)
	}
	return nil
}
