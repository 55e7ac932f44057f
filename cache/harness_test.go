package cache

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/memory"
)

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

var epoch0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// answer is what the test origin sends for one request.
type answer struct {
	status  int
	headers []string // "Name: value"
	body    string
	err     error         // fetch fails
	bodyErr error         // the body fails after it has been sent
	gate    chan struct{} // when set, the body waits for it half-way (or at gateAt)
	gateAt  int
	lieCL   int64 // when non-zero, the Content-Length announced (-1: unknown)
}

// origin is a scriptable origin that records the requests it gets.
type origin struct {
	mu      sync.Mutex
	handler func(req *httphead.Request, n int) answer
	reqs    []*httphead.Request
	count   atomic.Int32
}

func newOrigin(h func(req *httphead.Request, n int) answer) *origin { return &origin{handler: h} }

// fixed answers every request the same way.
func fixed(a answer) *origin {
	return newOrigin(func(*httphead.Request, int) answer { return a })
}

func (o *origin) fetch(ctx context.Context, req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
	n := int(o.count.Add(1))
	cp := &httphead.Request{}
	cp.SetLine(req.Method, req.Target, req.Host, req.Scheme)
	cp.Header.CopyFrom(&req.Header)
	o.mu.Lock()
	o.reqs = append(o.reqs, cp)
	o.mu.Unlock()
	a := o.handler(cp, n)
	if a.err != nil {
		return nil, nil, a.err
	}
	resp := &httphead.Response{Status: a.status, ProtoMajor: 1, ProtoMinor: 1}
	if resp.Status == 0 {
		resp.Status = 200
	}
	for _, h := range a.headers {
		name, value, _ := strings.Cut(h, ":")
		resp.Header.AddString(name, strings.TrimSpace(value))
	}
	resp.ContentLength = int64(len(a.body))
	if a.lieCL != 0 {
		resp.ContentLength = a.lieCL
	}
	gateAt := len(a.body) / 2
	if a.gateAt > 0 {
		gateAt = a.gateAt
	}
	return resp, &body{data: a.body, err: a.bodyErr, gate: a.gate, gateAt: gateAt}, nil
}

func (o *origin) last() *httphead.Request {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.reqs[len(o.reqs)-1]
}

// body sends data, waiting on gate half-way, then ends with err or EOF.
type body struct {
	data   string
	off    int
	err    error
	gate   chan struct{}
	gateAt int
	closed atomic.Bool
}

func (b *body) Read(p []byte) (int, error) {
	half := b.gateAt
	if b.gate != nil && b.off == half {
		<-b.gate
		b.gate = nil
	}
	end := len(b.data)
	if b.gate != nil {
		end = half
	}
	if b.off >= len(b.data) {
		if b.err != nil {
			return 0, b.err
		}
		return 0, io.EOF
	}
	n := copy(p, b.data[b.off:end])
	b.off += n
	return n, nil
}

func (b *body) Close() error { b.closed.Store(true); return nil }

var errOriginDown = errors.New("origin down")

// env is a cache over a memory store with a fake clock.
type env struct {
	t        *testing.T
	clock    *fakeClock
	store    storage.Store
	c        *Cache
	pol      *Policy
	detached atomic.Int32 // Origin.Detach calls
}

// originOf is the Origin of one request of the env: fetch under ctx,
// counting detaches.
func (e *env) originOf(ctx context.Context, fetch Fetch) Origin {
	return countingOrigin{FuncOrigin(ctx, fetch), &e.detached}
}

type countingOrigin struct {
	Origin
	n *atomic.Int32
}

func (o countingOrigin) Detach() Origin {
	o.n.Add(1)
	return countingOrigin{o.Origin.Detach(), o.n}
}

func newEnv(t *testing.T) *env {
	clock := &fakeClock{t: epoch0}
	store := memory.New(memory.Options{Capacity: 64 << 20})
	t.Cleanup(func() { store.Close() })
	return &env{t: t, clock: clock, store: store,
		c:   New(store, Options{Clock: clock.Now}),
		pol: &Policy{Enabled: true}}
}

// result is a served reply, read to its end.
type result struct {
	status  int
	code    Status
	reason  Reason
	head    httphead.Header
	body    string
	readErr error
}

func (r result) get(name string) string { return r.head.Get(name) }

func request(method, target string, headers ...string) *httphead.Request {
	req := &httphead.Request{}
	req.SetLine([]byte(method), []byte(target), []byte("example.com"), []byte("https"))
	req.ProtoMajor, req.ProtoMinor = 1, 1
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ":")
		req.Header.AddString(name, strings.TrimSpace(value))
	}
	return req
}

// do serves one request and reads the reply whole.
func (e *env) do(o *origin, method, target string, headers ...string) result {
	e.t.Helper()
	rep, err := e.c.Serve(e.originOf(context.Background(), o.fetch), request(method, target, headers...), e.pol, nil)
	if err != nil {
		return result{status: -1, readErr: err}
	}
	return readReply(rep)
}

func readReply(rep *Reply) result {
	res := result{status: rep.Head.Status, code: rep.Status, reason: rep.Reason}
	res.head.CopyFrom(&rep.Head.Header)
	switch {
	case rep.BodyBytes != nil:
		res.body = string(rep.BodyBytes)
	case rep.Body != nil:
		b, err := io.ReadAll(rep.Body)
		res.body, res.readErr = string(b), err
	}
	rep.Close()
	return res
}

// get is do for a GET of target.
func (e *env) get(o *origin, target string, headers ...string) result {
	e.t.Helper()
	return e.do(o, "GET", target, headers...)
}

// waitFills waits until no fill is in flight (background copies finish
// after their client has its reply).
func (e *env) waitFills() {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := e.c.Drain(ctx); err != nil {
		e.t.Fatal(err)
	}
}
