package cache

import "time"

// Policy is the caching configuration of one route, filled by config. The
// zero value caches nothing (Enabled is false); a Policy must not be changed
// while requests use it.
type Policy struct {
	// Enabled turns caching on for the route.
	Enabled bool
	// DefaultTTL is the freshness lifetime when the origin gives none; zero
	// means such responses are stored only when they carry a validator.
	DefaultTTL time.Duration
	// MinTTL and MaxTTL bound the lifetime the origin asked for; zero means
	// no bound.
	MinTTL, MaxTTL time.Duration
	// OverrideTTL, when non-zero, replaces the origin's freshness lifetime
	// (no-store and private still hold).
	OverrideTTL time.Duration
	// Heuristic allows heuristic freshness (10% of the Last-Modified age,
	// capped at HeuristicMax or one day) when the origin gives none.
	Heuristic    bool
	HeuristicMax time.Duration
	// Key chooses what identifies an object.
	Key KeySpec
	// Methods lists the cacheable methods; nil means GET and HEAD. A HEAD is
	// answered from a stored GET; a HEAD miss fetches and stores the GET.
	Methods []string
	// MaxObjectSize is the largest body stored, in bytes, whole or in
	// segments; zero means no limit (a body the store will not take whole
	// is stored in segments, see segment.go). Larger responses stream
	// through unstored.
	MaxObjectSize int64
	// StaleWhileRevalidate and StaleIfError are the stale windows used when
	// the response does not set them.
	StaleWhileRevalidate, StaleIfError time.Duration
	// TargetedField is the edge-targeted field that takes precedence over
	// Cache-Control (RFC 9213); "" means CDN-Cache-Control. Surrogate-Control
	// is honoured after it.
	TargetedField string
	// LockTimeout bounds how long a request waits for another's fetch of
	// the same object before going to the origin itself; zero means 5s.
	LockTimeout time.Duration
	// HitForPassTTL is how long a key whose response was uncacheable sends
	// its requests straight to the origin without collapsing them; zero
	// means 10s, negative disables it.
	HitForPassTTL time.Duration
	// KeepAcceptEncoding sends the client's Accept-Encoding to the origin
	// as it is and keys variants on its normal form (members sorted, case
	// and whitespace folded: see appendVaried). By default (false) a fill
	// asks the origin for "br", else "gzip", else no coding, whichever the
	// client accepts, so that equivalent Accept-Encoding values share one
	// stored variant.
	KeepAcceptEncoding bool
	// SurrogateKeyField names the response field whose space-separated
	// keys tag a stored object for purge by key; "" means Surrogate-Key.
	SurrogateKeyField string
	// KeepSurrogateKey sends that field on to clients instead of keeping
	// it for this cache only: what a shield does for the edges that fetch
	// from it, so that they index the keys too.
	KeepSurrogateKey bool
	// SetCookie says what becomes of a response with Set-Cookie: passed
	// unstored (the zero value), stored without the field, or stored as
	// it is (see SetCookieMode).
	SetCookie SetCookieMode
	// SegmentSize is the size of the segments a partial response, or a
	// full one above SegmentThreshold, is stored in (segment.go); zero
	// means DefaultSegmentSize (1 MiB).
	SegmentSize int64
	// SegmentThreshold is the body length above which a full response is
	// stored in segments rather than whole; zero means
	// DefaultSegmentThreshold (8 MiB).
	SegmentThreshold int64
}

// QueryMode chooses which query parameters enter the cache key.
type QueryMode uint8

const (
	QueryAll  QueryMode = iota // the whole query string, as sent
	QueryNone                  // no query at all
	QueryList                  // only the parameters named in KeySpec.QueryParams
)

// KeySpec chooses the parts of a request that form its cache key. The zero
// value keys on scheme, host, path and the whole query.
type KeySpec struct {
	// Origin names where responses under this spec come from (a route or
	// an upstream): it starts every key, so two origins never share an
	// object.
	Origin       string
	IgnoreScheme bool
	IgnoreHost   bool
	Query        QueryMode
	// QueryParams are the parameter names kept with QueryList, in sorted
	// order (config sorts them); each keeps every occurrence, in request order.
	QueryParams []string
	// Headers are request fields whose values enter the key.
	Headers []string
}

func (p *Policy) lockTimeout() time.Duration {
	if p.LockTimeout > 0 {
		return p.LockTimeout
	}
	return 5 * time.Second
}

func (p *Policy) hitForPassTTL() time.Duration {
	if p.HitForPassTTL == 0 {
		return 10 * time.Second
	}
	return p.HitForPassTTL
}

func (p *Policy) targetedField() string {
	if p.TargetedField != "" {
		return p.TargetedField
	}
	return "CDN-Cache-Control"
}

func (p *Policy) surrogateKeyField() string {
	if p.SurrogateKeyField != "" {
		return p.SurrogateKeyField
	}
	return "Surrogate-Key"
}

func (p *Policy) allows(method []byte) bool {
	if p.Methods == nil {
		return string(method) == "GET" || string(method) == "HEAD"
	}
	for _, m := range p.Methods {
		if string(method) == m {
			return true
		}
	}
	return false
}
