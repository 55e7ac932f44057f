package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/trace"
)

// Options configure an Engine. The zero value works.
type Options struct {
	// Via is the pseudonym in Via fields: a token or host[:port]
	// (RFC 9110 section 7.6.3). Default "outpost".
	Via string
	// TraceHeader is the request header that asks for the request's trace
	// to be returned in the X-Outpost-Trace response field, for a client
	// in TraceFrom or a request whose TraceHeader value is TraceToken.
	// It is never sent upstream. Empty: never.
	TraceHeader string
	// TraceFrom are the networks whose clients get a trace by asking.
	// Empty: none (only the token). A trace shows routes, cache keys,
	// upstream addresses and protection decisions.
	TraceFrom []netip.Prefix
	// TraceToken, when set, gets any client a trace when sent as the
	// value of TraceHeader; it is compared by digest in constant time.
	TraceToken string
	// Trusted reports whether a client is a proxy whose Forwarded and
	// X-Forwarded-* fields are kept and appended to, and whose
	// X-Forwarded-Proto is forwarded as it came. Nil: trust nobody, and
	// replace whatever the client sent.
	Trusted func(netip.Addr) bool
	// StripRequest are request fields removed before a request goes
	// upstream, besides DefaultStripRequest.
	StripRequest []string
	// KeepRequest are fields of DefaultStripRequest forwarded after all.
	KeepRequest []string
	// UpgradeAllow are the protocols (Upgrade field tokens, compared
	// without case and version) a client may switch to. A request asking
	// for another is served as a plain request; an origin switching to a
	// protocol not asked for gets a 502; h2c is never allowed. Nil:
	// websocket only; empty: none.
	UpgradeAllow []string
	// TunnelIdle closes a connection upgraded by a 101 response (a
	// WebSocket), on both sides, once no byte has moved either way for this
	// long: a tunnel would otherwise hold its two connections for ever.
	// Zero means 10 minutes; negative, no limit.
	TunnelIdle time.Duration
}

// tunnelIdle returns the TunnelIdle in effect; zero means no limit.
func (o *Options) tunnelIdle() time.Duration {
	switch {
	case o.TunnelIdle == 0:
		return 10 * time.Minute
	case o.TunnelIdle < 0:
		return 0
	}
	return o.TunnelIdle
}

// Engine runs requests through the phases of an App. It is safe for
// concurrent use; one Engine serves every connection of a server.
type Engine struct {
	opts   Options
	early  EarlyRequestFilter
	router Router
	reqF   RequestFilter
	upReq  UpstreamRequestFilter
	upResp UpstreamResponseFilter
	respF  ResponseFilter
	respBF ResponseBodyFilter
	respTF ResponseTrailersFilter
	reqTF  RequestTrailersFilter
	logger Logger
	errR   ErrorResponder

	strip       fieldSet // request fields never sent upstream
	upgrades    []string // protocols a client may switch to
	traceDigest [sha256.Size]byte
	traceToken  bool // traceDigest is set

	idPrefix string // random per engine, so request IDs differ across restarts
	idSeq    atomic.Uint64
	via10    string // "1.0 outpost" for HTTP/1.0 hops
	via11    string
	via20    string
}

// New builds an Engine over app, which must implement Router and may
// implement any other phase interface.
func New(app any, opts Options) (*Engine, error) {
	e := &Engine{opts: opts}
	var ok bool
	if e.router, ok = app.(Router); !ok {
		return nil, fmt.Errorf("proxy: app %T does not implement Router", app)
	}
	e.early, _ = app.(EarlyRequestFilter)
	e.reqF, _ = app.(RequestFilter)
	e.upReq, _ = app.(UpstreamRequestFilter)
	e.upResp, _ = app.(UpstreamResponseFilter)
	e.respF, _ = app.(ResponseFilter)
	e.respBF, _ = app.(ResponseBodyFilter)
	e.respTF, _ = app.(ResponseTrailersFilter)
	e.reqTF, _ = app.(RequestTrailersFilter)
	e.logger, _ = app.(Logger)
	e.errR, _ = app.(ErrorResponder)
	if e.opts.Via == "" {
		e.opts.Via = "outpost"
	}
	if !validPseudonym(e.opts.Via) {
		return nil, fmt.Errorf("proxy: Via pseudonym %q must be a token or host[:port]", e.opts.Via)
	}
	e.via10, e.via11, e.via20 = "1.0 "+e.opts.Via, "1.1 "+e.opts.Via, "2 "+e.opts.Via
	e.strip = stripSet(opts)
	e.upgrades = opts.UpgradeAllow
	if e.upgrades == nil {
		e.upgrades = []string{"websocket"}
	}
	if opts.TraceToken != "" {
		e.traceDigest, e.traceToken = sha256.Sum256([]byte(opts.TraceToken)), true
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	e.idPrefix = hex.EncodeToString(b[:])
	return e, nil
}

// NewCtx returns a Ctx for a connection to reuse across its requests.
func (e *Engine) NewCtx() *Ctx {
	return &Ctx{Trace: &trace.Trace{}, Request: nil}
}

// Serve runs one request. It returns an error when the connection can no
// longer be used: the response could not be completed (the client has
// received a truncated body, so the connection must be closed) or the
// client went away.
func (e *Engine) Serve(base context.Context, s Session, c *Ctx) error {
	e.reset(c, base, s)
	err := e.run(c)
	if err != nil {
		err = e.fail(c, err)
	}
	c.closeGate() // when no head was sent: the session is done with
	c.endUpBody()
	if e.logger != nil {
		e.logger.Log(c, err)
	}
	return err
}

// Reject answers a request that a session refused before the phases (an
// *httphead.Invalid, or any error with the status StatusOf gives it), and
// logs it as Serve would.
func (e *Engine) Reject(base context.Context, s Session, err error) error {
	c := e.NewCtx()
	e.reset(c, base, s)
	if inv, ok := err.(*httphead.Invalid); ok {
		err = Errorf(inv.Status, FromDownstream, inv.Reason, nil)
	}
	c.Trace.Add("reject", err.Error())
	err = e.fail(c, err)
	if e.logger != nil {
		e.logger.Log(c, err)
	}
	return err
}

func (e *Engine) reset(c *Ctx, base context.Context, s Session) {
	if c.Context != base {
		// Contexts derived from an earlier request may still read this
		// field, so it is written only when the connection's base changes,
		// which for one connection is never.
		c.Context = base
	}
	c.session = s
	c.engine = e
	c.Request = s.Request()
	c.Peer = s.ClientAddr()
	c.Client = c.Peer
	if e.opts.Trusted != nil && e.opts.Trusted(c.Peer.Addr()) {
		e.behindProxy(c)
	}
	c.TLS = s.TLS()
	c.JA4 = ""
	if f, ok := s.(Fingerprinted); ok {
		c.JA4 = f.JA4()
	}
	c.Route = nil
	c.Status, c.Bytes, c.Attempts = 0, 0, 0
	c.Upstream = ""
	c.wrote = false
	c.body, c.up = nil, nil
	c.Trace.Reset(time.Now())
	c.idBuf = append(append(c.idBuf[:0], e.idPrefix...), '-')
	c.idBuf = strconv.AppendUint(c.idBuf, e.idSeq.Add(1), 16)
}

func (e *Engine) run(c *Ctx) error {
	if c.Request.Upgrade && !e.upgradeAllowed(c.Request.Header.Peek("Upgrade")) {
		// Served as a plain request: prepare drops the Upgrade field
		// with the other hop-by-hop ones.
		c.Request.Upgrade = false
		c.Trace.Add("upgrade", "refused")
	}
	if e.early != nil {
		answered, err := e.early.EarlyRequest(c)
		if answered || err != nil {
			return err
		}
	}
	if err := e.router.Route(c); err != nil {
		return err
	}
	if c.Route == nil {
		if len(c.Request.Target) > 0 && c.Request.Target[0] != '/' && c.Request.Target[0] != '*' {
			return ErrNotServed // absolute-form for a host nobody serves: never an open proxy
		}
		return ErrNoRoute
	}
	c.Trace.Add("route", c.Route.Name)
	if s, ok := c.session.(Early); ok && s.Early() {
		if err := e.early0RTT(c); err != nil {
			return err
		}
	}
	if e.reqF != nil {
		answered, err := e.reqF.RequestFilter(c)
		if answered || err != nil {
			return err
		}
	}
	if c.Route.Cache != nil && !c.Request.Upgrade {
		rep, err := c.Route.Cache.Serve(c)
		if err != nil {
			return err
		}
		if rep.Closer != nil {
			defer rep.Closer.Close()
		}
		return e.send(c, rep.Head, rep.BodyBytes, rep.Body)
	}
	resp, body, err := e.fetch(c, c.Request)
	if err != nil {
		return err
	}
	defer body.Close()
	if resp.Status == 101 {
		return e.tunnel(c, resp, body)
	}
	return e.send(c, resp, nil, body)
}

// fail answers an error: with an error response when nothing has been
// sent yet, and otherwise by reporting that the connection must close.
func (e *Engine) fail(c *Ctx, err error) error {
	status, reason := StatusOf(err)
	if e.errR != nil {
		status, reason = e.errR.ErrorResponse(c, err)
	}
	c.Trace.Add("error", reason)
	if c.wrote || errors.Is(err, context.Canceled) {
		return err
	}
	var h httphead.Header
	h.AddString("Content-Type", "text/plain; charset=utf-8")
	h.AddString("Cache-Control", "no-store")
	if status >= 500 || c.Request.Close {
		h.AddString("Connection", "close")
	}
	if werr := c.Respond(status, &h, []byte(reason+"\n")); werr != nil {
		return werr
	}
	if status >= 500 || c.Request.Close {
		return err // the connection state is uncertain: close it
	}
	return nil
}

// send writes a response and its body to the client.
func (e *Engine) send(c *Ctx, resp *httphead.Response, bodyBytes []byte, body io.Reader) error {
	c.closeGate() // the final response is here: its trace includes what went through the gate
	e.addVia(&resp.Header, resp.ProtoMajor, resp.ProtoMinor)
	if e.respF != nil {
		if err := e.respF.Response(c, resp); err != nil {
			return err
		}
	}
	upstream := body // the body whose trailers are sent
	if e.respBF != nil {
		var err error
		if bodyBytes, body, err = e.respBF.ResponseBody(c, resp, bodyBytes, body); err != nil {
			return err
		}
	}
	if err := c.writeHead(resp); err != nil {
		return downstreamErr(err)
	}
	if !httphead.BodyAllowed(c.Request.Method, resp.Status) {
		return downstreamErr(c.session.Finish(nil))
	}
	if bodyBytes != nil {
		n, err := c.session.Write(bodyBytes)
		c.Bytes += int64(n)
		if err != nil {
			return downstreamErr(err)
		}
	} else if body != nil {
		if err := e.flushHeadBefore(c, resp, body); err != nil {
			return err
		}
		if err := e.copyBody(c, body); err != nil {
			return err
		}
	}
	var trailers *httphead.Header
	if t, ok := upstream.(Trailered); ok {
		if trailers = t.Trailers(); trailers != nil {
			trailers.RemoveNotInTrailers()
		}
	}
	if trailers != nil && e.respTF != nil {
		if err := e.respTF.ResponseTrailers(c, trailers); err != nil {
			return err
		}
	}
	return downstreamErr(c.session.Finish(trailers))
}

// traceName is the response field that carries a request's trace.
const traceName = "X-Outpost-Trace"

var traceField = []byte(traceName)

// wantsTrace reports whether the request asks for its trace and may have
// it: the client is in TraceFrom, or the field carries the token.
func (e *Engine) wantsTrace(c *Ctx) bool {
	if e.opts.TraceHeader == "" {
		return false
	}
	v := c.Request.Header.Peek(e.opts.TraceHeader)
	if v == nil {
		return false
	}
	// A trusted proxy's request stands for a client behind it, whose
	// address the network check cannot see: only the token counts then.
	ip := c.Peer.Addr().Unmap()
	if e.opts.Trusted == nil || !e.opts.Trusted(ip) {
		for _, p := range e.opts.TraceFrom {
			if p.Contains(ip) {
				return true
			}
		}
	}
	if !e.traceToken {
		return false
	}
	// Comparing digests takes the same time whatever the value's length
	// and however much of it is right.
	d := sha256.Sum256(v)
	return subtle.ConstantTimeCompare(d[:], e.traceDigest[:]) == 1
}

// bufPool holds copy buffers for streamed bodies.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// copyBody streams body to the client in bounded memory.
func (e *Engine) copyBody(c *Ctx, body io.Reader) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		if err := c.Err(); err != nil {
			return Errorf(504, FromUpstream, "request timed out", err)
		}
		n, rerr := body.Read(buf)
		if n > 0 {
			w, werr := c.session.Write(buf[:n])
			c.Bytes += int64(w)
			if werr != nil {
				return downstreamErr(werr)
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			c.Trace.Add("upstream", "body aborted")
			return Errorf(502, FromUpstream, "upstream body aborted", rerr)
		}
	}
}

// flushHeadBefore sends the head the session holds when the body's first
// Read may wait on the origin; when the body's bytes are here, the head
// leaves with them in one write. An empty body leaves the head to Finish,
// which ends an HTTP/2 stream with it (a gRPC trailers-only response).
func (e *Engine) flushHeadBefore(c *Ctx, resp *httphead.Response, body io.Reader) error {
	hf, ok := c.session.(HeadFlusher)
	if !ok || resp.ContentLength == 0 || BodyReady(body) {
		return nil
	}
	return downstreamErr(hf.FlushHead())
}

func downstreamErr(err error) error {
	if err == nil {
		return nil
	}
	return Errorf(499, FromDownstream, "client went away", err)
}

// addVia appends this hop to a Via field (RFC 9110 section 7.6.3).
func (e *Engine) addVia(h *httphead.Header, major, minor int) {
	via := e.via11
	switch {
	case major == 2:
		via = e.via20
	case major == 1 && minor == 0:
		via = e.via10
	}
	h.AddString("Via", via)
}

// validPseudonym reports whether s may stand for this hop in a Via field:
// token characters, plus ':' and brackets for a host:port.
func validPseudonym(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~:[]", c) >= 0) {
			return false
		}
	}
	return s != ""
}

// tunnel relays a connection upgraded by a 101 response both ways until
// either side closes.
func (e *Engine) tunnel(c *Ctx, resp *httphead.Response, upstream io.ReadCloser) error {
	up, ok := upstream.(io.ReadWriteCloser)
	if !ok {
		return Errorf(502, FromInternal, "upgrade not supported by upstream transport", nil)
	}
	if err := c.writeHead(resp); err != nil {
		return downstreamErr(err)
	}
	down, err := c.session.Upgrade()
	if err != nil {
		return Errorf(502, FromDownstream, "upgrade failed", err)
	}
	c.Trace.Add("upgrade", "tunnel")
	w := watchIdle(e.opts.tunnelIdle(), func() { up.Close(); down.Close() })
	done := make(chan int64, 2)
	go func() {
		n, _ := io.Copy(up, w.reader(down))
		up.Close()
		done <- n
	}()
	n, _ := io.Copy(down, w.reader(up))
	down.Close()
	c.Bytes = n + <-done
	if w.stop() {
		c.Trace.Add("tunnel", "idle timeout")
	}
	return nil
}

// idleWatch closes a tunnel once no byte has moved either way for its
// limit: each read stamps the time, and a timer checks the stamp when the
// limit could have passed.
type idleWatch struct {
	limit time.Duration
	start time.Time    // with a monotonic reading
	last  atomic.Int64 // when a byte last moved, as time since start
	timer *time.Timer
	fired atomic.Bool
	close func()
}

// watchIdle starts watching; limit 0 watches nothing.
func watchIdle(limit time.Duration, close func()) *idleWatch {
	w := &idleWatch{limit: limit, start: time.Now(), close: close}
	if limit > 0 {
		w.timer = time.AfterFunc(limit, w.check)
	}
	return w
}

func (w *idleWatch) check() {
	idle := time.Since(w.start) - time.Duration(w.last.Load())
	if idle < w.limit {
		w.timer.Reset(w.limit - idle)
		return
	}
	w.fired.Store(true)
	w.close()
}

// stop ends the watch and reports whether it closed the tunnel.
func (w *idleWatch) stop() bool {
	if w.timer != nil {
		w.timer.Stop()
	}
	return w.fired.Load()
}

// reader returns r stamping the watch on every read that moves bytes.
func (w *idleWatch) reader(r io.Reader) io.Reader {
	if w.timer == nil {
		return r
	}
	return &stampReader{r: r, w: w}
}

type stampReader struct {
	r io.Reader
	w *idleWatch
}

func (s *stampReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.w.last.Store(int64(time.Since(s.w.start)))
	}
	return n, err
}

// behindProxy takes what a trusted proxy says of its client: the nearest
// address in X-Forwarded-For that is not itself a trusted proxy becomes
// Client, and an X-Forwarded-Proto of http or https becomes the request's
// scheme (a TLS-terminating balancer knows it; this hop does not), so the
// cache key and routing see the scheme the client used.
func (e *Engine) behindProxy(c *Ctx) {
	xff := c.Request.Header.Peek("X-Forwarded-For")
	for len(xff) > 0 {
		i := bytes.LastIndexByte(xff, ',')
		item := httphead.TrimOWS(xff[i+1:])
		xff = xff[:max(i, 0)]
		ip, err := netip.ParseAddr(unsafe.String(unsafe.SliceData(item), len(item)))
		if err != nil {
			break // a garbled list: trust nothing further along it
		}
		c.Client = netip.AddrPortFrom(ip.Unmap(), 0)
		if !e.opts.Trusted(ip) {
			break
		}
	}
	proto := httphead.TrimOWS(c.Request.Header.Peek("X-Forwarded-Proto"))
	if (string(proto) == "https" || string(proto) == "http") && string(proto) != string(c.Request.Scheme) {
		r := c.Request
		r.SetLine(r.Method, r.Target, r.Host, proto)
	}
}

// early0RTT decides on a request that came in TLS early data: only a safe
// method on a route that accepts early data goes on (RFC 8470).
func (e *Engine) early0RTT(c *Ctx) error {
	safe := c.Request.IsMethod("GET") || c.Request.IsMethod("HEAD") || c.Request.IsMethod("OPTIONS")
	if !c.Route.EarlyData || !safe {
		c.Trace.Add("early-data", "refused")
		return Errorf(425, FromDownstream, "too early", nil)
	}
	c.Trace.Add("early-data", "accepted")
	return nil
}
