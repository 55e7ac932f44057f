package proxy

import (
	"bytes"
	"context"
	"io"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/trace"
)

// Callout sends req, with body, through route's upstream (its servers,
// pooling, retries and timeouts) for a hook of the request, such as a
// filter's HTTP call, and returns the response; the body must be closed.
// The upstream phases run on a Ctx of their own under ctx: the request's
// state, trace and client see nothing of them (interim responses
// included).
func (c *Ctx) Callout(ctx context.Context, route *Route, req *httphead.Request, body []byte) (*httphead.Response, io.ReadCloser, error) {
	d := &Ctx{Context: ctx, Request: req, Peer: c.Peer, Client: c.Client, TLS: c.TLS, JA4: c.JA4,
		Route: route, Trace: &trace.Trace{}, engine: c.engine, idBuf: c.idBuf}
	d.Trace.Reset(time.Now())
	if len(body) > 0 {
		d.body = bytes.NewReader(body)
	}
	req.ContentLength = int64(len(body))
	return d.Fetch(req)
}
