package fiddle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/h1"
	"github.com/outpost-edge/outpost/h2"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/trace"
)

// Bounds of one run: a fiddle is for trying things, not for load.
const (
	maxSteps    = 200
	memoryMax   = 64 << 20        // the run's cache memory
	timeoutCap  = 2 * time.Second // mocked upstreams' connect and first byte timeouts
	stepTimeout = time.Minute     // one request, background work included
	defaultIP   = "192.0.2.10"
)

// ConfigFile is the file name config errors of the API carry.
const ConfigFile = "fiddle.yaml"

// Run runs a fiddle: the config is parsed and validated as production
// does it; when it is valid, each step runs in order on one engine.
func Run(ctx context.Context, in *Request) *Response {
	return run(ctx, ConfigFile, in)
}

func run(ctx context.Context, file string, in *Request) *Response {
	out := &Response{Errors: []ConfigError{}, Results: []Result{}}
	cfg, err := config.Parse(file, []byte(in.Config))
	if err != nil {
		out.Errors = configErrors(err)
		return out
	}
	if errs := checkRequest(cfg, in); len(errs) > 0 {
		out.Errors = errs
		return out
	}
	r, err := start(cfg, in)
	if err != nil {
		out.Errors = configErrors(err)
		return out
	}
	defer r.close()
	out.Notes = r.notes
	for i := range in.Requests {
		if err := ctx.Err(); err != nil {
			// The run's time is up (or its client left): the remaining
			// steps are reported, not run.
			out.Results = append(out.Results, Result{Error: "not run: " + err.Error(),
				OriginFetches: []Fetch{}, Events: []Event{}, Assertions: []Assertion{}})
			continue
		}
		out.Results = append(out.Results, r.step(ctx, &in.Requests[i]))
	}
	return out
}

// configErrors lists the *config.Error values in err (Parse joins them).
func configErrors(err error) []ConfigError {
	list := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	}
	out := make([]ConfigError, 0, len(list))
	for _, e := range list {
		var ce *config.Error
		if errors.As(e, &ce) {
			out = append(out, ConfigError{Line: ce.Line, Key: ce.Key, Message: ce.Reason, Text: ce.Error()})
		} else {
			out = append(out, ConfigError{Message: e.Error(), Text: e.Error()})
		}
	}
	return out
}

var failKinds = []string{"", "reset", "timeout", "refuse"}

// checkRequest checks what the fiddle adds to the config: origin scripts
// and steps.
func checkRequest(cfg *config.Config, in *Request) []ConfigError {
	var errs []ConfigError
	bad := func(key, format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		errs = append(errs, ConfigError{Key: key, Message: msg, Text: key + ": " + msg})
	}
	checkScripts := func(prefix string, scripts map[string][]Rule) {
		for name, rules := range scripts {
			if _, ok := cfg.Upstreams[name]; !ok {
				bad(prefix+"."+name, "no upstream %q in the config", name)
			}
			for i, r := range rules {
				key := fmt.Sprintf("%s.%s[%d]", prefix, name, i)
				if !slices.Contains(failKinds, r.Fail) {
					bad(key+".fail", "%q is not a failure: use reset, timeout or refuse", r.Fail)
				}
				if r.Delay != "" {
					if d, err := time.ParseDuration(r.Delay); err != nil || d < 0 || d > maxDelay {
						bad(key+".delay", "%q is not a duration from 0s to %s", r.Delay, maxDelay)
					}
				}
				if r.Status != 0 && (r.Status < 100 || r.Status > 599) {
					bad(key+".status", "%d is not an HTTP status", r.Status)
				}
			}
		}
	}
	checkScripts("origins", in.Origins)
	for _, name := range in.Real {
		if _, ok := cfg.Upstreams[name]; !ok {
			bad("real_upstreams", "no upstream %q in the config", name)
		}
	}
	if len(in.Requests) > maxSteps {
		bad("requests", "%d requests: at most %d per run", len(in.Requests), maxSteps)
	}
	for i, s := range in.Requests {
		checkScripts(fmt.Sprintf("requests[%d].origins", i), s.Origins)
		if s.At != "" {
			if _, err := parseOffset(s.At); err != nil {
				bad(fmt.Sprintf("requests[%d].at", i), "%v", err)
			}
		}
		if _, ok := protocol(s.Protocol); !ok {
			bad(fmt.Sprintf("requests[%d].protocol", i), "%q is not a protocol: use h1, http/1.0 or h2", s.Protocol)
		}
	}
	return errs
}

// parseOffset reads "+90s", "+1h", "+1d" (days as in the config).
func parseOffset(s string) (time.Duration, error) {
	t := strings.TrimPrefix(strings.TrimSpace(s), "+")
	if days, ok := strings.CutSuffix(t, "d"); ok {
		n, err := strconv.Atoi(days)
		if err == nil && n >= 0 {
			return time.Duration(n) * 24 * time.Hour, nil
		}
	}
	d, err := time.ParseDuration(t)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an offset like +0s, +90s or +1h", s)
	}
	return d, nil
}

// runner is one run's engine, origins and clock.
type runner struct {
	cfg     *config.Config
	shared  *edge.Shared
	app     *edge.App
	eng     *proxy.Engine
	origins *origins
	clock   *clock
	base    time.Time
	offset  time.Duration
	servers map[string]string // mock address -> the server's addr in the config
	notes   []string
	h2      *h2.Server
	tmp     string   // holds the run's CA file, when an upstream needs it
	names   []string // what the run's certificate names besides loopback
	cert    *tls.Certificate
	certPEM []byte

	mu       sync.Mutex
	followed []*trace.Trace // detached from the current step's request
}

// start builds the engine: the config as given, but for its upstreams
// (mocks), its storage (memory only) and its access log (off).
func start(cfg *config.Config, in *Request) (*runner, error) {
	base := time.Now().UTC().Truncate(time.Second)
	r := &runner{cfg: cfg, clock: &clock{now: base}, base: base, servers: map[string]string{},
		h2: h2.NewServer(h2.Limits{MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes), WriteTimeout: cfg.Timeouts.Write})}
	r.h2.Log = slog.New(slog.DiscardHandler)
	r.origins = newOrigins(r.clock, in.Origins)
	cfg.Log.Access = "off"
	if cfg.Storage.Disk.Path != "" {
		cfg.Storage.Disk = config.DiskStorage{}
		r.notes = append(r.notes, "storage: the disk tier is left out; the fiddle's cache is in memory")
	}
	if s := cfg.Storage.Memory.Size; s == 0 || s > memoryMax {
		cfg.Storage.Memory.Size = memoryMax
	}
	names := make([]string, 0, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		names = append(names, name)
		if u.TLS.Enabled {
			r.names = append(r.names, u.TLS.SNI)
			for _, s := range u.Servers {
				r.names = append(r.names, hostOf(s.Addr))
			}
		}
	}
	sort.Strings(names)
	for _, name := range names {
		if slices.Contains(in.Real, name) {
			r.notes = append(r.notes, "upstream "+name+": real servers")
			continue
		}
		if err := r.mock(name, cfg.Upstreams[name]); err != nil {
			r.origins.close()
			return nil, err
		}
	}
	if err := cfg.Provision(); err != nil {
		r.origins.close()
		return nil, err
	}
	if err := r.origins.script(nil); err != nil {
		r.origins.close()
		return nil, err
	}
	var err error
	if r.shared, err = edge.NewSharedClock(cfg, slog.New(slog.DiscardHandler), r.clock.Now); err != nil {
		r.origins.close()
		return nil, err
	}
	if r.app, err = edge.Build(cfg, r.shared); err == nil {
		r.eng, err = proxy.New(r.app, r.app.Options())
	}
	if err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// mock points an upstream's servers at mock origins, one per server.
func (r *runner) mock(name string, u *config.Upstream) error {
	var changed []string
	if u.Type == config.UpstreamS3 && u.S3 != nil {
		// A bucket is mocked as one HTTP origin standing for its endpoint:
		// no store is reached and no credential is read.
		endpoint, _ := url.Parse(u.S3.EndpointURL())
		u.Type, u.S3 = config.UpstreamHTTP, nil
		u.Servers = []config.Server{{Addr: endpoint.Host, Weight: 1}}
		changed = append(changed, "an s3 bucket mocked as an HTTP origin")
	}
	tlsConf, h2, tlsNote, err := r.mockTLS(u)
	if err != nil {
		return err
	}
	if tlsNote != "" {
		changed = append(changed, tlsNote)
	}
	seen := map[string]string{}
	for i, s := range u.Servers {
		local, ok := seen[s.Addr]
		if !ok {
			var err error
			if local, err = r.origins.add(name, s.Addr, tlsConf, h2); err != nil {
				return err
			}
			seen[s.Addr] = local
			r.servers[local] = s.Addr
		}
		u.Servers[i].Addr = local
	}
	if u.DNS != nil {
		u.DNS = nil
		changed = append(changed, "no DNS discovery")
	}
	if u.Health.Enabled() {
		u.Health.Path, u.Health.TCP = "", false
		changed = append(changed, "active health checks off (they run on the real clock)")
	}
	if u.FirstByteTimeout == 0 || u.FirstByteTimeout > timeoutCap {
		u.FirstByteTimeout = timeoutCap
		changed = append(changed, "first_byte_timeout capped at "+timeoutCap.String())
	}
	if u.ConnectTimeout == 0 || u.ConnectTimeout > timeoutCap {
		u.ConnectTimeout = timeoutCap
	}
	note := "upstream " + name + ": mock origins"
	if len(changed) > 0 {
		note += "; " + strings.Join(changed, "; ")
	}
	r.notes = append(r.notes, note)
	return nil
}

// certificate returns the run's certificate, made on first use.
func (r *runner) certificate() (tls.Certificate, error) {
	if r.cert == nil {
		cert, pem, err := selfSigned(r.names)
		if err != nil {
			return tls.Certificate{}, err
		}
		r.cert, r.certPEM = &cert, pem
	}
	return *r.cert, nil
}

func (r *runner) close() {
	if r.app != nil {
		r.app.Close()
	}
	if r.shared != nil {
		r.shared.Close()
	}
	r.origins.close()
	if r.tmp != "" {
		os.RemoveAll(r.tmp)
	}
}

// step runs one request or purge at its virtual time, waits for the
// cache's background work, and gathers what happened.
func (r *runner) step(ctx context.Context, s *Step) Result {
	res := Result{OriginFetches: []Fetch{}, Events: []Event{}, Assertions: []Assertion{}}
	if s.At != "" {
		r.offset, _ = parseOffset(s.At) // checked before the run
	}
	r.clock.set(r.base.Add(r.offset))
	res.At = "+" + r.offset.String()
	if s.Origins != nil {
		if err := r.origins.script(s.Origins); err != nil {
			res.Error = err.Error()
		}
	}
	var c *proxy.Ctx
	var connErr error
	if s.Purge != nil {
		r.purge(s.Purge, &res)
	} else {
		c, connErr = r.exchange(ctx, s, &res)
	}
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	settleErr := r.shared.Settle(sctx)
	cancel()
	if c != nil {
		res.Events = r.events(c.Trace, r.takeFollowed())
		line := string(c.Trace.AppendHeader(nil))
		res.Trace = line[:strings.LastIndex(line, "total=")]
		res.Trace = strings.TrimSuffix(res.Trace, "; ")
	}
	if connErr != nil {
		res.Events = append(res.Events, Event{Phase: "connection", Decision: "closed", Reason: connErr.Error()})
	}
	if settleErr != nil {
		res.Events = append(res.Events, Event{Phase: "fiddle", Decision: "unsettled", Reason: settleErr.Error()})
	}
	res.OriginFetches = r.origins.take()
	r.noteSurrogateKeys(&res)
	res.Events = append(res.Events, headerEvents(&res)...)
	res.Assertions = check(s.Assert, &res)
	return res
}

func (r *runner) purge(p *Purge, res *Result) {
	pr, err := r.app.Purge(edge.PurgeRequest{URLs: p.URLs, Keys: p.Keys, All: p.All, Soft: p.Soft})
	if err != nil {
		res.Error = err.Error()
		return
	}
	res.Purged = &pr.Objects
	kind := "hard"
	if p.Soft {
		kind = "soft"
	}
	what := append(append([]string{}, p.URLs...), prefixed("key ", p.Keys)...)
	if p.All {
		what = append(what, "everything")
	}
	res.Request = StepRequest{Method: "PURGE", URL: strings.Join(what, " "), Headers: map[string]string{}}
	res.Events = append(res.Events, Event{Phase: "purge", Decision: kind,
		Reason: fmt.Sprintf("%s: %d objects", strings.Join(what, ", "), pr.Objects)})
}

func prefixed(p string, list []string) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = p + s
	}
	return out
}

// exchange sends one request through the engine as a listener would:
// over TLS after a real handshake when the step says so, then as
// HTTP/1.x read by the production codec, or as HTTP/2 through the
// production HTTP/2 session.
func (r *runner) exchange(ctx context.Context, s *Step, res *Result) (*proxy.Ctx, error) {
	u, err := url.Parse(s.URL)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		res.Error = fmt.Sprintf("url %q: an absolute http or https URL is needed", s.URL)
		return nil, nil
	}
	ip, err := netip.ParseAddr(cmpOr(s.ClientIP, defaultIP))
	if err != nil {
		res.Error = fmt.Sprintf("client_ip %q: %v", s.ClientIP, err)
		return nil, nil
	}
	proto, _ := protocol(s.Protocol) // checked before the run
	res.Request = StepRequest{Method: cmpOr(s.Method, "GET"), URL: s.URL, ClientIP: ip.String(), Protocol: proto, Headers: map[string]string{}}
	rctx, cancel := context.WithTimeout(ctx, stepTimeout)
	defer cancel()
	if d := r.cfg.Timeouts.Request; d > 0 {
		rctx, cancel = context.WithTimeout(rctx, d)
		defer cancel()
	}
	l := conn{client: netip.AddrPortFrom(ip, 50000), ja4: s.JA4}
	if u.Scheme == "https" || s.TLS {
		u.Scheme = "https"
		if err := r.secure(rctx, &l, s, u, proto, res); err != nil {
			res.Error = err.Error()
			return nil, nil
		}
	}
	began := time.Now()
	var c *proxy.Ctx
	if proto == "HTTP/2.0" {
		c, err = r.exchangeH2(rctx, s, u, l, res)
	} else {
		l.close()
		c, err = r.exchangeH1(rctx, s, u, proto, l, res)
	}
	res.took = time.Since(began)
	res.Response.TimeMS = float64(res.took.Microseconds()) / 1000
	if res.Response.Headers == nil {
		res.Response.Headers = map[string]string{}
	}
	return c, err
}

// conn is the client's side of a step as the listener sees it.
type conn struct {
	client netip.AddrPort
	tls    *tls.ConnectionState
	ja4    string
	srv    net.Conn // the TLS connection's ends, or nil
	cli    net.Conn
}

func (l *conn) close() {
	if l.srv != nil {
		l.srv.Close()
		l.cli.Close()
	}
}

// secure runs the TLS handshake of a step.
func (r *runner) secure(ctx context.Context, l *conn, s *Step, u *url.URL, proto string, res *Result) error {
	sni := s.SNI
	if sni == "" && net.ParseIP(u.Hostname()) == nil {
		sni = u.Hostname() // as clients do: no SNI for an IP address (RFC 6066 section 3)
	}
	alpn := []string{"http/1.1"}
	if proto == "HTTP/2.0" {
		alpn = []string{"h2"}
	}
	cert, err := r.certificate()
	if err != nil {
		return err
	}
	srv, cli, print, err := handshake(ctx, cert, sni, alpn)
	if err != nil {
		return err
	}
	st := srv.ConnectionState()
	l.tls, l.srv, l.cli = &st, srv, cli
	if l.ja4 == "" {
		l.ja4 = print
	}
	res.Request.TLS = &TLSInfo{SNI: st.ServerName, ALPN: st.NegotiatedProtocol, Version: tls.VersionName(st.Version), JA4: l.ja4}
	return nil
}

// exchangeH1 writes the step out as HTTP/1.x and has the production
// codec read it, as the HTTP/1.1 listener does.
func (r *runner) exchangeH1(ctx context.Context, s *Step, u *url.URL, proto string, l conn, res *Result) (*proxy.Ctx, error) {
	sess := &session{client: l.client, ja4: l.ja4, tls: l.tls}
	scheme := []byte(u.Scheme)
	sess.req.Paths = r.cfg.Proxy.Paths()
	br := bufio.NewReader(bytes.NewReader(requestBytes(s, u, proto)))
	sess.body = br
	lim := h1.Limits{MaxHeaderBytes: int(r.cfg.Limits.MaxHeaderBytes), MaxHeaders: r.cfg.Limits.MaxHeaders}
	c := r.eng.NewCtx()
	c.Trace.Follow = r.follow
	var err error
	if perr := h1.ReadRequest(br, &sess.req, scheme, lim); perr != nil {
		err = r.eng.Reject(ctx, sess, perr)
		c.Trace.Add("reject", perr.Error())
	} else {
		err = r.eng.Serve(ctx, sess, c)
	}
	res.Request.Method = string(sess.req.Method)
	res.Request.Headers = headerMap(&sess.req.Header)
	res.Response = ClientReply{Status: sess.status, Headers: sess.headers, Body: sess.out.String(), BodyBytes: sess.n}
	return c, err
}

// follow keeps the traces of work detached from a request (fills,
// refreshes); the cache may start them from its own goroutines.
func (r *runner) follow(t *trace.Trace) {
	r.mu.Lock()
	r.followed = append(r.followed, t)
	r.mu.Unlock()
}

// takeFollowed returns the detached traces since the last call; the
// work they record is done (the step has settled).
func (r *runner) takeFollowed() []*trace.Trace {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.followed
	r.followed = nil
	return t
}

// protocol names a step's protocol as the request line does.
func protocol(p string) (string, bool) {
	switch strings.ToLower(p) {
	case "", "h1", "http/1.1":
		return "HTTP/1.1", true
	case "http/1.0":
		return "HTTP/1.0", true
	case "h2", "http/2", "http/2.0":
		return "HTTP/2.0", true
	}
	return "", false
}

// requestBytes writes a step as an HTTP/1.x request.
func requestBytes(s *Step, u *url.URL, proto string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %s\r\n", cmpOr(s.Method, "GET"), u.RequestURI(), proto)
	host := u.Host
	names := make([]string, 0, len(s.Headers))
	for k, v := range s.Headers {
		switch {
		case strings.EqualFold(k, "Host"):
			host = v
		case strings.EqualFold(k, "Content-Length"):
		default:
			names = append(names, k)
		}
	}
	sort.Strings(names)
	fmt.Fprintf(&b, "Host: %s\r\n", host)
	for _, k := range names {
		fmt.Fprintf(&b, "%s: %s\r\n", k, s.Headers[k])
	}
	if s.Body != "" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(s.Body))
	}
	b.WriteString("\r\n")
	b.WriteString(s.Body)
	return b.Bytes()
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// compile-time check: the session is what the engine serves.
var _ interface {
	proxy.Session
	proxy.Fingerprinted
} = (*session)(nil)
