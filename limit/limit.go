// Package limit holds the rate estimators and limiters of the protection
// layer, over opaque byte keys: a GCRA limiter in a fixed-size table, a
// count-min sketch rate estimator, and in-flight counters for concurrent
// requests and connections. It knows nothing of HTTP; the engine picks the
// key (client IP, IPv6 /64, a header value, the route) and acts on the
// Decision, for which this package also writes the Retry-After and IETF
// RateLimit / RateLimit-Policy field values.
//
// Memory stays bounded whatever the number of distinct clients: a Limiter
// is a preallocated table of 8-byte slots, so ten million distinct keys cost
// the same as ten. A key that loses its slot to another starts again with a
// full burst: the table can only fail open, never deny a client that is
// within its limit (apart from a rare fingerprint clash with a key that is
// being limited at the time: about 1 in 130,000 new keys, see Limiter).
//
// Every call takes the current time, so tests drive the clock; nothing in
// this package reads the wall clock except to pick an epoch.
package limit

import (
	"errors"
	"fmt"
	"time"
)

// ErrBadLimit is returned by Limit.Validate for a limit that cannot work.
var ErrBadLimit = errors.New("limit: invalid limit")

// Limit is how many requests a key may make: Rate per Period, in bursts of
// at most Burst. The zero Limit is invalid; Validate says why.
type Limit struct {
	// Name identifies the limit in the RateLimit and RateLimit-Policy
	// fields and in logs. Default "default".
	Name string
	// Rate is the number of requests allowed per Period. Must be > 0.
	Rate int
	// Period is the window Rate is counted over. Default one second.
	Period time.Duration
	// Burst is how many requests may arrive at once after a quiet spell.
	// Default (zero) is Rate, which makes the limit read as "Rate requests
	// in any Period".
	Burst int
}

// WithDefaults returns l with its zero fields filled, as New and
// Limiter.Limit report it.
func (l Limit) WithDefaults() Limit {
	if l.Name == "" {
		l.Name = "default"
	}
	if l.Period == 0 {
		l.Period = time.Second
	}
	if l.Burst == 0 {
		l.Burst = l.Rate
	}
	return l
}

// Validate reports whether the limit, with defaults filled, can work.
func (l Limit) Validate() error {
	l = l.WithDefaults()
	switch {
	case l.Rate <= 0:
		return fmt.Errorf("%w %q: rate %d must be positive", ErrBadLimit, l.Name, l.Rate)
	case l.Period < 0:
		return fmt.Errorf("%w %q: period %v must be positive", ErrBadLimit, l.Name, l.Period)
	case l.Burst < 0:
		return fmt.Errorf("%w %q: burst %d must be positive", ErrBadLimit, l.Name, l.Burst)
	case l.Period/time.Duration(l.Rate) < time.Microsecond:
		return fmt.Errorf("%w %q: %d per %v is finer than one request per microsecond", ErrBadLimit, l.Name, l.Rate, l.Period)
	case time.Duration(l.Burst)*(l.Period/time.Duration(l.Rate)) > maxTolerance:
		return fmt.Errorf("%w %q: burst %d takes longer than %v to refill", ErrBadLimit, l.Name, l.Burst, maxTolerance)
	}
	return nil
}

// Decision is the outcome of one Allow call.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests the key may make right now.
	Remaining int
	// RetryAfter is how long a refused key must wait before its next
	// request can be allowed; zero when Allowed.
	RetryAfter time.Duration
	// ResetAfter is how long until the key is back to a full burst.
	ResetAfter time.Duration
}
