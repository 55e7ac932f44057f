package cache

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

// readyBody is an origin body whose bytes have all arrived.
type readyBody struct{ *body }

func (readyBody) Ready() bool { return true }

// TestBodiesSayWhetherTheirBytesAreHere: the engine sends a response head
// with the first body bytes when the body says they are here
// (proxy.ReadyBody), and on its own before waiting otherwise. A miss
// being stored says so when the origin's bytes came with its head (the
// reader then waits on the copier only, which may not have copied
// anything yet); a range of a stored body always does.
func TestBodiesSayWhetherTheirBytesAreHere(t *testing.T) {
	e := newEnv(t)
	o := fixed(answer{headers: []string{"Cache-Control: max-age=60"}, body: "hello, world"})
	readyFetch := func(ctx context.Context, req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
		resp, b, err := o.fetch(ctx, req)
		if err != nil {
			return nil, nil, err
		}
		return resp, readyBody{b.(*body)}, nil
	}
	for _, tc := range []struct {
		name  string
		fetch Fetch
		want  bool
	}{{"/ready", readyFetch, true}} {
		rep, err := e.c.Serve(e.originOf(context.Background(), tc.fetch), request("GET", tc.name), e.pol, nil)
		if err != nil {
			t.Fatal(err)
		}
		rb, ok := rep.Body.(interface{ Ready() bool })
		if rep.Status != StatusMiss || !ok || rb.Ready() != tc.want {
			t.Errorf("miss %s: %v, body %T ready %v; want ready %v", tc.name, rep.Status, rep.Body, ok && rb.Ready(), tc.want)
		}
		io.ReadAll(rep.Body)
		rep.Close()
	}
	// A range of a stored body reads no origin; one of a segmented
	// object that lacks a segment may.
	for _, tc := range []struct {
		src  io.ReaderAt
		want bool
	}{{strings.NewReader("hello, world"), true}, {wantingSource{strings.NewReader("hello, world")}, false}} {
		var r Reply
		r.setRangeBody(request("GET", "/r", "Range: bytes=0-4"), nil, 12, tc.src)
		if rb, ok := r.Body.(interface{ Ready() bool }); !ok || rb.Ready() != tc.want {
			t.Errorf("range body from %T: %T; want ready %v", tc.src, r.Body, tc.want)
		}
	}
}

// wantingSource is a range source that fetches what it lacks.
type wantingSource struct{ io.ReaderAt }

func (wantingSource) want(int64) {}
