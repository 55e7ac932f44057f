// Package fiddle runs requests through an isolated Outpost engine built
// from a config, with the upstreams replaced by scripted mock origins and
// the cache on a virtual clock, and reports for each request the response,
// the origin fetches and every decision the engine made (from the
// per-request trace). It is the production engine (config.Parse, edge.Build,
// proxy.Engine, the cache and the upstream client), not a model of it:
// only the origins and the clock are the fiddle's.
//
// What a run changes in the config, and says so in Response.Notes: each
// mocked upstream's servers point at loopback mocks speaking the
// upstream's protocol (HTTP/1.1 or HTTP/2, over TLS with a certificate
// made for the run, which the upstream is made to trust), without DNS
// discovery or active health checks (those run on
// the real clock), with connect and first byte timeouts capped at 2s; the
// cache is in memory (at most 64 MiB); the access log is off. Real time
// still passes for what only real time drives (rule delays, timeouts).
//
// The page served at /fiddle/ (by "outpost fiddle" and by the admin
// listener), the JSON API it calls and "outpost test FILE..." all go
// through Run.
package fiddle

import "time"

// Request is one fiddle run: the API's POST /fiddle/api/run body and the
// content of a test file.
type Request struct {
	// Name is a title, kept when the fiddle is saved or exported.
	Name string `json:"name,omitempty" yaml:"name,omitempty"`
	// Config is the YAML config, as production reads it.
	Config string `json:"config" yaml:"config"`
	// Origins scripts the mock origin of each upstream, by upstream name.
	// An upstream with no script answers 404 to everything.
	Origins map[string][]Rule `json:"origins,omitempty" yaml:"origins,omitempty"`
	// Real names upstreams left pointing at their real servers.
	Real []string `json:"real_upstreams,omitempty" yaml:"real_upstreams,omitempty"`
	// Requests are run in order on one engine, one cache and one clock.
	Requests []Step `json:"requests" yaml:"requests"`
}

// Rule is what a mock origin answers for one path.
type Rule struct {
	// Path is the request path answered: exact, or a prefix when it ends
	// in "*"; "" and "*" answer every path.
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
	// Method restricts the rule to one method; "" is any.
	Method string `json:"method,omitempty" yaml:"method,omitempty"`
	// Server restricts the rule to one of the upstream's servers (its
	// addr in the config); "" is every server.
	Server  string            `json:"server,omitempty" yaml:"server,omitempty"`
	Status  int               `json:"status,omitempty" yaml:"status,omitempty"` // default 200
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body    string            `json:"body,omitempty" yaml:"body,omitempty"`
	// Delay holds the response head this long (real time, at most 10s).
	Delay string `json:"delay,omitempty" yaml:"delay,omitempty"`
	// Fail makes the origin fail instead: "reset" (the connection closes
	// half way through the body), "timeout" (no answer: the upstream's
	// first_byte_timeout, capped in the fiddle, expires) or "refuse" (the
	// server refuses connections; the rule's path is then ignored).
	Fail string `json:"fail,omitempty" yaml:"fail,omitempty"`
}

// Step is one request to the engine, or a purge.
type Step struct {
	Method  string            `json:"method,omitempty" yaml:"method,omitempty"` // default GET
	URL     string            `json:"url,omitempty" yaml:"url,omitempty"`
	Headers map[string]string `json:"headers,omitempty" yaml:"headers,omitempty"`
	Body    string            `json:"body,omitempty" yaml:"body,omitempty"`
	// ClientIP is the client's address; default 192.0.2.10.
	ClientIP string `json:"client_ip,omitempty" yaml:"client_ip,omitempty"`
	// TLS makes the request arrive over TLS (also implied by an https
	// URL): a real handshake with the fiddle's own certificate, whose
	// ClientHello gives the fingerprint (JA4) the engine sees.
	TLS bool `json:"tls,omitempty" yaml:"tls,omitempty"`
	// SNI is the server name the TLS client sends; default the URL's
	// host (none when it is an IP address).
	SNI string `json:"sni,omitempty" yaml:"sni,omitempty"`
	// JA4, when set, replaces the fingerprint of the handshake: the
	// engine sees this client instead of the fiddle's Go client.
	JA4 string `json:"ja4,omitempty" yaml:"ja4,omitempty"`
	// Protocol is "h1" or "http/1.1" (default), "http/1.0", or "h2":
	// HTTP/2 through the production HTTP/2 session (over TLS with ALPN
	// h2, or cleartext with prior knowledge).
	Protocol string `json:"protocol,omitempty" yaml:"protocol,omitempty"`
	// At is the virtual time of the request, as an offset from the first
	// ("+90s", "+1h"); default: the previous step's time.
	At string `json:"at,omitempty" yaml:"at,omitempty"`
	// Purge, when set, makes this step a purge instead of a request.
	Purge *Purge `json:"purge,omitempty" yaml:"purge,omitempty"`
	// Origins replaces the scripts of the upstreams it names from this
	// step on ("make an origin fail").
	Origins map[string][]Rule `json:"origins,omitempty" yaml:"origins,omitempty"`
	// Assert are CEL expressions over response, origin_fetches and
	// events, each of which must be true.
	Assert []string `json:"assert,omitempty" yaml:"assert,omitempty"`
}

// Purge is a purge step, as the admin API's POST /purge takes it.
type Purge struct {
	URLs []string `json:"urls,omitempty" yaml:"urls,omitempty"`
	Keys []string `json:"keys,omitempty" yaml:"keys,omitempty"`
	All  bool     `json:"all,omitempty" yaml:"all,omitempty"`
	Soft bool     `json:"soft,omitempty" yaml:"soft,omitempty"`
}

// Response is the API's answer: config errors, or one result per step.
type Response struct {
	Errors  []ConfigError `json:"errors"`
	Results []Result      `json:"results"`
	// Notes say what the fiddle changed in the config to run it
	// (upstreams replaced by mocks, the disk tier left out).
	Notes []string `json:"notes,omitempty"`
}

// ConfigError is one problem in the config, as "outpost validate" reports
// it (Text is its whole line there).
type ConfigError struct {
	Line    int    `json:"line,omitempty"`
	Key     string `json:"key,omitempty"`
	Message string `json:"message"`
	Text    string `json:"text"`
}

// Result is what one step did.
type Result struct {
	At            string      `json:"at"` // virtual time offset
	Request       StepRequest `json:"request"`
	Response      ClientReply `json:"response"`
	OriginFetches []Fetch     `json:"origin_fetches"`
	Events        []Event     `json:"events"`
	// Trace is the request's trace as the X-Outpost-Trace response
	// header shows it (without the total time): the engine's own record,
	// from which Events are named.
	Trace      string        `json:"trace,omitempty"`
	Assertions []Assertion   `json:"assertions"`
	Purged     *int          `json:"purged,omitempty"` // objects a purge step touched
	Error      string        `json:"error,omitempty"`  // the step could not run (bad URL)
	took       time.Duration // wall time of the exchange
}

// StepRequest echoes the request as the engine received it.
type StepRequest struct {
	Method   string            `json:"method"`
	URL      string            `json:"url"`
	ClientIP string            `json:"client_ip"`
	Headers  map[string]string `json:"headers"`
	Protocol string            `json:"protocol"` // HTTP/1.0, HTTP/1.1 or HTTP/2.0
	TLS      *TLSInfo          `json:"tls,omitempty"`
}

// TLSInfo is what a TLS handshake settled.
type TLSInfo struct {
	SNI     string `json:"sni,omitempty"`
	ALPN    string `json:"alpn,omitempty"`
	Version string `json:"version"`
	JA4     string `json:"ja4,omitempty"` // the client's fingerprint
}

// ClientReply is the response the client got.
type ClientReply struct {
	Status    int               `json:"status"`
	Headers   map[string]string `json:"headers"`
	Body      string            `json:"body"` // the first bodyPreview bytes
	BodyBytes int64             `json:"body_bytes"`
	TimeMS    float64           `json:"time_ms"`
}

// Fetch is one request a mock origin received, and what it answered.
type Fetch struct {
	Upstream string      `json:"upstream"`
	Server   string      `json:"server"` // the server's addr in the config
	Request  FetchedReq  `json:"request"`
	Response FetchedResp `json:"response"`
}

// FetchedReq is a request as the origin received it.
type FetchedReq struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers"`
	Body    string            `json:"body,omitempty"`
	// Protocol is HTTP/1.1 or HTTP/2.0; TLS is set when the upstream
	// connected over TLS.
	Protocol string   `json:"protocol"`
	TLS      *TLSInfo `json:"tls,omitempty"`
}

// FetchedResp is what the mock origin sent back.
type FetchedResp struct {
	Status  int               `json:"status,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    string            `json:"body,omitempty"`
	Fail    string            `json:"fail,omitempty"`
}

// Event is one decision, from the request's trace.
type Event struct {
	Phase    string  `json:"phase"`
	Decision string  `json:"decision"`
	Reason   string  `json:"reason"`
	AtMS     float64 `json:"at_ms"`
	// Detached marks decisions of work that outlived the request: a
	// cache fill, a stale-while-revalidate refresh.
	Detached bool `json:"detached,omitempty"`
}

// Assertion is an assertion's outcome.
type Assertion struct {
	Expr  string `json:"expr"`
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}
