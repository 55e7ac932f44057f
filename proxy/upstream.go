package proxy

import (
	"io"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// Upstream chooses servers for a route and judges each attempt. The engine
// runs the attempt loop: Pick, RoundTrip, Finish, and again while Finish
// asks for a retry.
type Upstream interface {
	// Pick returns the server for attempt n (0 for the first). A retry
	// should get a different server when one is available. An error (no
	// healthy server, circuit open) ends the request with its status.
	Pick(ctx *Ctx, attempt int) (Peer, error)
	// Finish is told how an attempt went: resp is nil when err is set. It
	// records the outcome (health, latency, budgets) and reports whether
	// the engine should try again.
	Finish(ctx *Ctx, p Peer, attempt int, resp *httphead.Response, err error, took time.Duration) (retry bool)
}

// Peer is one upstream server.
type Peer interface {
	// Addr names the server in traces and logs ("10.0.0.1:8080").
	Addr() string
	// RoundTrip sends req with body and reads the response head into
	// resp. The returned body must be closed; reading it to the end lets
	// the connection be reused. For a 101 response the body is the raw
	// connection, readable and writable (an io.ReadWriteCloser).
	RoundTrip(ctx *Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error)
}
