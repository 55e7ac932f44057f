package config

import (
	"regexp"
	"time"

	"github.com/outpost-edge/outpost/config/expr"
)

// Route says how a set of requests is handled. Routes are tried in order and
// the first whose Match fits handles the request.
type Route struct {
	// Name identifies the route in logs, metrics and traces; without one
	// a route is named "route<i>", where i is its index. Names must be
	// unique.
	Name string `yaml:"name"`
	// Match selects the requests; an empty Match matches every request.
	Match Match `yaml:"match"`
	// Upstream names the upstream that serves the route. Exactly one of
	// Upstream and Respond is required.
	Upstream string `yaml:"upstream"`
	// Fallback names upstreams tried in order after Upstream when the hop
	// before answers with a status in FallbackOn, or gives no answer once
	// its retries are spent: a primary bucket, then an archive bucket,
	// then the application. A request whose body was sent (and not kept
	// for retries) stays with the hop it reached. The hop that answered is
	// in the trace and in Cache-Status's detail. Default: none.
	Fallback []string `yaml:"fallback"`
	// FallbackOn are the statuses that send a request on to the next
	// hop of Fallback. Default: [403, 404].
	FallbackOn []int `yaml:"fallback_on"`
	// Respond, when set, answers with a static response instead of an
	// upstream. Default: nil.
	Respond *Respond `yaml:"respond"`
	// Headers edits request and response headers.
	Headers HeaderOps `yaml:"headers"`
	// Cache configures caching of the route's responses.
	Cache Cache `yaml:"cache"`
	// Compress configures compression of the route's responses.
	Compress Compress `yaml:"compress"`
	// Rewrite, when set, rewrites the route's response bodies. Default:
	// nil, none.
	Rewrite *Rewrite `yaml:"rewrite"`
	// RateLimits are applied in order; a request over any of them gets
	// the limit's action. Default: none.
	RateLimits []RateLimit `yaml:"rate_limits"`
	// Filters names the Proxy-Wasm filters (wasm.filters) the route
	// runs, in order, after wasm.global's. Default: none.
	Filters []string `yaml:"filters"`
	// EarlyData accepts requests that arrive in HTTP/3 0-RTT, before the
	// handshake ends, when their method is safe (GET, HEAD, OPTIONS):
	// early data can be replayed by an attacker, so only requests that
	// change nothing may use it. Any other early request gets 425 Too
	// Early and the client sends it again after the handshake (RFC 8470).
	// HTTP/3 listeners accept 0-RTT at all only when a route sets this
	// at start. Default: false.
	EarlyData bool `yaml:"early_data"`
}

func (r *Route) setDefaults() {
	r.Cache.setDefaults()
	r.Compress.setDefaults()
	r.FallbackOn = []int{403, 404}
}

// Match selects requests. Every condition that is set must hold. At most one
// of the path conditions may be set.
type Match struct {
	// Hosts are host names, lowercased by Provision; "*.example.org"
	// matches any subdomain of example.org (not example.org itself).
	// Default: empty, any host.
	Hosts []string `yaml:"hosts"`
	// PathPrefix matches paths starting with it. Default: "", unset.
	PathPrefix string `yaml:"path_prefix"`
	// PathExact matches only this path. Default: "", unset.
	PathExact string `yaml:"path_exact"`
	// PathPattern is a glob over the path: "*" matches within one
	// segment, "**" across segments. Default: "", unset.
	PathPattern string `yaml:"path_pattern"`
	// PathRegex is an RE2 regular expression matched against the whole
	// path (it is anchored). Default: "", unset.
	PathRegex string `yaml:"path_regex"`
	// Methods are request methods, e.g. [GET, HEAD]. Default: any.
	Methods []string `yaml:"methods"`
	// Headers maps a request header name to its required exact value;
	// the value "*" only requires the header to be present.
	// Default: none.
	Headers map[string]string `yaml:"headers"`
	// Expr is a condition in the expression language of package
	// config/expr, such as `method == "POST" && ip_in(ip, "10.0.0.0/8")`.
	// Default: "", none.
	Expr string `yaml:"expr"`

	// PathRegexp is PathPattern or PathRegex compiled by Provision,
	// anchored at both ends; nil when neither is set.
	PathRegexp *regexp.Regexp `yaml:"-"`
	// Condition is Expr compiled by Provision; nil when Expr is "".
	Condition *expr.Program `yaml:"-"`
}

// Respond is a static response.
type Respond struct {
	// Status is the response status (100 to 599). Default: 200.
	Status int `yaml:"status"`
	// Body is the response body; not allowed with 1xx, 204 and 304.
	// Default: "", empty.
	Body string `yaml:"body"`
	// Headers are response header fields, checked as HeaderOps sets
	// are. Default: none.
	Headers map[string]string `yaml:"headers"`
}

func (r *Respond) setDefaults() { r.Status = 200 }

// HeaderOps edits headers on the way to the upstream and back to the
// client. Removals happen before sets. All default to none. Set values
// must be valid field values (RFC 9110 section 5.5: no CR, LF, NUL or
// other control but HTAB), and framing and hop-by-hop fields
// (Content-Length, Transfer-Encoding, Connection, Upgrade...) cannot be
// set: the proxy writes those for each connection.
type HeaderOps struct {
	RequestSet     map[string]string `yaml:"request_set"`     // set on the upstream request, replacing
	RequestRemove  []string          `yaml:"request_remove"`  // removed from the upstream request
	ResponseSet    map[string]string `yaml:"response_set"`    // set on the client response, replacing
	ResponseRemove []string          `yaml:"response_remove"` // removed from the client response
}

// QueryMode says which parts of the query string go into the cache key.
type QueryMode string

// Query modes.
const (
	QueryAll  QueryMode = "all"  // the whole query string, as sent
	QueryNone QueryMode = "none" // no query string
	QueryList QueryMode = "list" // only the parameters in CacheKey.QueryParams
)

// Cache configures caching for a route. Responses are stored and served
// following RFC 9111; the TTL settings adjust what the origin says.
type Cache struct {
	// Enabled turns caching on for the route. Default: true.
	Enabled bool `yaml:"enabled"`
	// DefaultTTL is the freshness lifetime of a cacheable response that
	// gives none. Default: 0, such responses are not stored (unless
	// Heuristic).
	DefaultTTL time.Duration `yaml:"default_ttl"`
	// MinTTL raises shorter lifetimes given by the origin to this.
	// Default: 0, no floor.
	MinTTL time.Duration `yaml:"min_ttl"`
	// MaxTTL lowers longer lifetimes to this. Default: 0, no ceiling.
	MaxTTL time.Duration `yaml:"max_ttl"`
	// OverrideTTL, when set, replaces whatever lifetime the origin gives.
	// Default: 0, the origin decides.
	OverrideTTL time.Duration `yaml:"override_ttl"`
	// Heuristic allows the RFC 9111 §4.2.2 heuristic lifetime (a tenth of
	// the time since Last-Modified) when no lifetime is given.
	// Default: false.
	Heuristic bool `yaml:"heuristic"`
	// StaleWhileRevalidate serves a stale response for up to this long
	// past expiry while it is refreshed in the background. The origin's
	// own stale-while-revalidate wins when given. Default: 0, none.
	StaleWhileRevalidate time.Duration `yaml:"stale_while_revalidate"`
	// StaleIfError serves a stale response for up to this long past
	// expiry when the origin fails. Default: 0, none.
	StaleIfError time.Duration `yaml:"stale_if_error"`
	// Key says what goes into the cache key.
	Key CacheKey `yaml:"key"`
	// Methods are the request methods served from the cache.
	// Default: [GET, HEAD].
	Methods []string `yaml:"methods"`
	// MaxObjectSize is the largest response body stored, in bytes, whole
	// or in segments. Default: 0, no limit (bodies larger than a store
	// takes whole are stored in segments).
	MaxObjectSize Size `yaml:"max_object_size"`
	// SegmentSize is the size of the segments in which partial responses
	// (206) and responses above segment_threshold are stored, each
	// segment its own cache entry: a range request fetches and stores
	// only the segments it needs, and a large object never has to fit in
	// a store whole. Between 4KiB and 64MiB; default (and 0): 1MiB.
	SegmentSize Size `yaml:"segment_size"`
	// SegmentThreshold is the body length above which a full response
	// with a validator (ETag or Last-Modified) is stored in segments
	// rather than whole. Default: 8MiB.
	SegmentThreshold Size `yaml:"segment_threshold"`
	// LockTimeout is how long a request waits for another one fetching
	// the same object (request collapsing) before going to the origin
	// itself. Default: 5s; 0 turns collapsing off.
	LockTimeout time.Duration `yaml:"lock_timeout"`
	// HitForPassTTL remembers for this long that a key was uncacheable,
	// so later requests skip the collapsing wait. Default: 30s; 0 turns
	// it off.
	HitForPassTTL time.Duration `yaml:"hit_for_pass_ttl"`
	// TargetedField is the targeted cache-control header (RFC 9213) this
	// cache obeys before Cache-Control. Default: "CDN-Cache-Control";
	// "" obeys none.
	TargetedField string `yaml:"targeted_field"`
	// SetCookie is what becomes of a response with Set-Cookie: pass
	// (relayed, not stored; the key then skips the cache for
	// hit_for_pass_ttl), strip (stored without its Set-Cookie fields: the
	// client whose request fetched it gets them, hits never do) or store
	// (stored as it is: every client gets the cookie). An origin's
	// private="Set-Cookie" or no-cache="Set-Cookie" stores the response
	// without the field under pass too. Default: pass, as Varnish and
	// Fastly do, since a cookie is one user's state (SECURITY.md).
	SetCookie string `yaml:"set_cookie"`
}

func (c *Cache) setDefaults() {
	*c = Cache{Enabled: true, Methods: []string{"GET", "HEAD"}, LockTimeout: 5 * time.Second,
		SegmentSize: 1 << 20, SegmentThreshold: 8 << 20,
		HitForPassTTL: 30 * time.Second, TargetedField: "CDN-Cache-Control", SetCookie: "pass"}
	c.Key.setDefaults()
}

// CacheKey says which parts of a request make its cache key. The path is
// always part of it.
type CacheKey struct {
	// Scheme adds http or https, so a response made for one (a redirect
	// to https) is never served to the other. Default: true.
	Scheme bool `yaml:"scheme"`
	// Route starts the key with the route's name, so that routes that
	// send requests to different origins (or the same origin with other
	// header edits) never share objects. false starts it with the
	// upstream's name instead: routes to one upstream share objects. The
	// key always says which origin a response came from. Default: true.
	Route bool `yaml:"route"`
	// Host adds the Host header. Default: true.
	Host bool `yaml:"host"`
	// Query is all, none or list. Default (also when empty): all.
	Query QueryMode `yaml:"query"`
	// QueryParams are the query parameters kept when Query is list, in
	// the order given. Default: none; required with list.
	QueryParams []string `yaml:"query_params"`
	// Headers are request header names whose values are added.
	// Default: none.
	Headers []string `yaml:"headers"`
}

func (k *CacheKey) setDefaults() {
	*k = CacheKey{Scheme: true, Host: true, Route: true, Query: QueryAll}
}

// LimitAction is what a rate limit does to a request over the limit.
type LimitAction string

// Rate limit actions.
const (
	LimitReject LimitAction = "reject" // answer 429 with Retry-After
	LimitLog    LimitAction = "log"    // only log and count, for trying a limit out
)

// RateLimit is a token bucket per key (GCRA, see limit.Limiter).
type RateLimit struct {
	// Name identifies the limit in the RateLimit-Policy field, logs and
	// metrics, and is how protection rules refer to it. Required and
	// unique in protection.limits; in a route, default "<route>.<i>"
	// where i is its index.
	Name string `yaml:"name"`
	// Key is what a bucket is kept per: client_ip, ipv6_64, header:NAME,
	// route or expr:SOURCE. Default (also when empty): client_ip.
	Key KeySource `yaml:"key"`
	// Rate is how many requests are allowed per Per. Required, positive.
	Rate int `yaml:"rate"`
	// Per is the period of Rate. Default: 1s; must be positive.
	Per time.Duration `yaml:"per"`
	// Burst is the bucket size: requests allowed at once after a quiet
	// period. Default: 0, equal to Rate.
	Burst int `yaml:"burst"`
	// Action is reject or log. Default (also when empty): reject.
	Action LimitAction `yaml:"action"`

	// KeyProgram is the expression of an expr:SOURCE key, compiled by
	// Provision (see expr.CompileString); nil for other keys.
	KeyProgram *expr.Program `yaml:"-"`
}

func (r *RateLimit) setDefaults() {
	*r = RateLimit{Key: KeySource{Kind: KeyClientIP}, Per: time.Second, Action: LimitReject}
}
