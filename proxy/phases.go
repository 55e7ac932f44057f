package proxy

import (
	"io"

	"github.com/outpost-edge/outpost/httphead"
)

// EarlyRequestFilter runs first, before routing. It may answer the request
// itself (a redirect, a denial, a health page): it then writes the response
// through ctx.Respond and returns true, and no later phase but Logging runs.
// An error ends the request through ErrorResponder.
type EarlyRequestFilter interface {
	EarlyRequest(ctx *Ctx) (answered bool, err error)
}

// Router chooses what serves the request: it fills ctx.Route. A nil Route
// after Route returns means no route serves the request, answered 404 (or
// 421 for an absolute-form target for a host we do not serve: never an open
// proxy). The engine requires a Router.
type Router interface {
	Route(ctx *Ctx) error
}

// RequestFilter runs after routing, before the cache and the upstream: it
// sees the chosen route and may answer the request itself (rate limits,
// bot rules), as EarlyRequestFilter can.
type RequestFilter interface {
	RequestFilter(ctx *Ctx) (answered bool, err error)
}

// UpstreamRequestFilter edits the request about to be sent upstream (out).
// It runs once per request, before the first attempt; the engine has already
// removed hop-by-hop fields and added Forwarded, X-Forwarded-* and Via.
type UpstreamRequestFilter interface {
	UpstreamRequest(ctx *Ctx, out *httphead.Request) error
}

// UpstreamResponseFilter edits the origin's response before it is cached
// and before ResponseFilter. It runs once per origin response.
type UpstreamResponseFilter interface {
	UpstreamResponse(ctx *Ctx, resp *httphead.Response) error
}

// ResponseFilter edits the response sent to the client, whether it came
// from the origin or from the cache. It runs once per request.
type ResponseFilter interface {
	Response(ctx *Ctx, resp *httphead.Response) error
}

// ResponseBodyFilter may read and replace the body of the response sent to
// the client. It runs after ResponseFilter, before the head is sent, with
// the body in memory (bodyBytes) or as a stream (body), and returns the
// body to send; when it changes the body's length it sets
// resp.ContentLength.
type ResponseBodyFilter interface {
	ResponseBody(ctx *Ctx, resp *httphead.Response, bodyBytes []byte, body io.Reader) ([]byte, io.Reader, error)
}

// RequestTrailersFilter may edit the trailer section of a request body
// before it is sent upstream; it runs when the body ends, with the fields
// a trailer section must not carry already dropped. It runs on the
// goroutine that reads the body, while the request waits for the
// response head; a body that ends after the head has come (an HTTP/2
// origin that answers before the request is whole) has its trailers sent
// unfiltered, which the trace records. An error fails the request.
type RequestTrailersFilter interface {
	RequestTrailers(ctx *Ctx, trailers *httphead.Header) error
}

// ResponseTrailersFilter may edit the trailers of the response sent to
// the client; it runs after the body was sent, only for responses whose
// origin body carries trailers (a body streamed through, not stored). The
// head is sent: an error aborts the response.
type ResponseTrailersFilter interface {
	ResponseTrailers(ctx *Ctx, trailers *httphead.Header) error
}

// Logger runs once per request after the response has been sent or the
// request failed (err non-nil). It must not retain ctx.
type Logger interface {
	Log(ctx *Ctx, err error)
}

// ErrorResponder chooses the status and short reason sent to the client
// for an error. The default maps *Error values to their status and any
// other error to 502.
type ErrorResponder interface {
	ErrorResponse(ctx *Ctx, err error) (status int, reason string)
}

// Cache answers a request from a cache, reaching the origin through
// ctx.Fetch when it must. The engine calls it when ctx.Route.Cache is set.
type Cache interface {
	Serve(ctx *Ctx) (Reply, error)
}

// Reply is a response produced by a Cache.
type Reply struct {
	Head *httphead.Response
	// BodyBytes holds the whole body when it is in memory; Body is used
	// otherwise. Both are nil for a response without a body.
	BodyBytes []byte
	Body      io.Reader
	// Closer, when set, is closed once the reply has been sent.
	Closer io.Closer
}
