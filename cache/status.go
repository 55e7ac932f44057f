package cache

// Status says how a request was served.
type Status uint8

const (
	StatusMiss           Status = iota // fetched from the origin (stored or not: see Reason)
	StatusHit                          // served fresh from the cache
	StatusStale                        // served stale (max-stale, stale-if-error, only-if-cached)
	StatusStaleUpdating                // served stale while one background refresh runs
	StatusRevalidated                  // stale entry confirmed by a 304 and served
	StatusExpired                      // stale entry replaced by a new response from the origin
	StatusCollapsed                    // served from another request's fetch as it streamed in
	StatusPass                         // sent to the origin, never stored (hit-for-pass, uncacheable method)
	StatusBypass                       // caching is off for the route or the request
	StatusGatewayTimeout               // only-if-cached with nothing usable stored (504)
)

var statusNames = [...]string{
	StatusMiss: "miss", StatusHit: "hit", StatusStale: "stale", StatusStaleUpdating: "stale-updating",
	StatusRevalidated: "revalidated", StatusExpired: "expired", StatusCollapsed: "collapsed",
	StatusPass: "pass", StatusBypass: "bypass", StatusGatewayTimeout: "gateway-timeout",
}

func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return "unknown"
}

// Reason says why a response was not stored or not served from the cache.
type Reason uint8

const (
	ReasonNone           Reason = iota
	ReasonDisabled              // caching is off for the route
	ReasonMethod                // the method is not cacheable
	ReasonRequestNoStore        // the request said no-store
	ReasonRequestNoCache        // the request asked for revalidation (no-cache, max-age, min-fresh)
	ReasonNoStore               // the response said no-store
	ReasonPrivate               // the response said private
	ReasonAuthorization         // an authorized request without public, s-maxage or must-revalidate
	ReasonVaryStar              // Vary: *
	ReasonSetCookie             // the response sets a cookie
	ReasonStatus                // the status is not cacheable
	ReasonNoFreshness           // no lifetime and no validator
	ReasonTooLarge              // the body exceeds MaxObjectSize or the store's limit
	ReasonStoreError            // the store refused the object
	ReasonOriginError           // the origin failed (stale-if-error)
	ReasonAborted               // the origin body ended early; nothing stored
	ReasonHitForPass            // the key recently answered uncacheable
	ReasonLockTimeout           // waiting on another request's fetch took too long
	ReasonVaryMismatch          // another variant is being fetched
	ReasonUnsafe                // an unsafe method; its URI was invalidated on success
	ReasonOnlyIfCached          // only-if-cached with nothing usable stored
	ReasonTransferCoded         // the body carries a transfer coding Outpost cannot decode
)

var reasonNames = [...]string{
	ReasonNone: "", ReasonDisabled: "disabled", ReasonMethod: "method",
	ReasonRequestNoStore: "request-no-store", ReasonRequestNoCache: "request-no-cache",
	ReasonNoStore: "no-store", ReasonPrivate: "private", ReasonAuthorization: "authorization",
	ReasonVaryStar: "vary-star", ReasonSetCookie: "set-cookie", ReasonStatus: "status",
	ReasonNoFreshness: "no-freshness", ReasonTooLarge: "too-large", ReasonStoreError: "store-error",
	ReasonOriginError: "origin-error", ReasonAborted: "aborted", ReasonHitForPass: "hit-for-pass",
	ReasonLockTimeout: "lock-timeout", ReasonVaryMismatch: "vary-mismatch", ReasonUnsafe: "unsafe-method",
	ReasonOnlyIfCached: "only-if-cached", ReasonTransferCoded: "transfer-coded",
}

func (r Reason) String() string {
	if int(r) < len(reasonNames) {
		return reasonNames[r]
	}
	return "unknown"
}
