package upstream

import (
	"slices"
	"time"
)

// Retry decides whether a failed attempt is tried again on another server.
// It is pure policy: the engine asks after each attempt, and Iter.Next then
// enforces the retry budget. The zero value allows 3 attempts, retries
// connect failures always, and retries resets and 502/503/504 for
// idempotent requests whose body has not been sent.
type Retry struct {
	// MaxAttempts is the number of attempts per request, the first
	// included. Default 3 (zero or less); 1 disables retries.
	MaxAttempts int
	// Statuses are the response statuses retried. Default 502, 503, 504.
	Statuses []int
	// Timeouts makes attempts that timed out retryable. Off by default: a
	// slow origin would get the same slow request again.
	Timeouts bool
	// NonIdempotent retries requests with any method (a POST may then run
	// twice). Connect failures are retried regardless: nothing was sent.
	NonIdempotent bool
	// AfterBodySent retries even when the request body was sent upstream;
	// the caller must be able to send it again.
	AfterBodySent bool
	// Backoff is the base of the jittered back-off between attempts
	// (see Backoff); zero means retry at once. MaxBackoff caps it; zero
	// means Backoff.
	Backoff, MaxBackoff time.Duration
}

// Attempt describes a finished attempt for Retry.Decide.
type Attempt struct {
	N          int     // attempts made so far, this one included (1 for the first)
	Outcome    Outcome // as reported
	Status     int     // response status when a response head arrived
	Idempotent bool    // the request's method is idempotent (see Idempotent)
	BodySent   bool    // some of the request body went upstream
}

// RetryReason says why an attempt is or is not retried. Its String is short
// and constant: it goes into the request trace without allocating.
type RetryReason uint8

const (
	NoRetrySuccess       RetryReason = iota // the attempt did not fail
	NoRetryMaxAttempts                      // MaxAttempts reached
	NoRetryNotIdempotent                    // the method may not run twice
	NoRetryBodySent                         // the body is gone
	NoRetryOutcome                          // this kind of failure is not retried
	RetryConnect                            // connect failed
	RetryReset                              // reset before the response head
	RetryTimeout                            // timed out
	RetryStatus                             // a retryable status
)

var retryReasons = [...]string{
	NoRetrySuccess:       "success",
	NoRetryMaxAttempts:   "max attempts",
	NoRetryNotIdempotent: "not idempotent",
	NoRetryBodySent:      "body sent",
	NoRetryOutcome:       "not retryable",
	RetryConnect:         "connect failed",
	RetryReset:           "reset",
	RetryTimeout:         "timeout",
	RetryStatus:          "status",
}

func (r RetryReason) String() string {
	if int(r) < len(retryReasons) {
		return retryReasons[r]
	}
	return "unknown"
}

// Retry reports whether the reason allows a retry.
func (r RetryReason) Retry() bool { return r >= RetryConnect }

var defaultRetryStatuses = []int{502, 503, 504}

// Decide says whether to retry after attempt a, and why.
func (r *Retry) Decide(a Attempt) RetryReason {
	why := r.retryable(a)
	if !why.Retry() {
		return why
	}
	if a.N >= r.maxAttempts() {
		return NoRetryMaxAttempts
	}
	if why == RetryConnect {
		return why // nothing reached the server
	}
	if a.BodySent && !r.AfterBodySent {
		return NoRetryBodySent
	}
	if !a.Idempotent && !r.NonIdempotent {
		return NoRetryNotIdempotent
	}
	return why
}

func (r *Retry) maxAttempts() int {
	if r.MaxAttempts <= 0 {
		return 3
	}
	return r.MaxAttempts
}

func (r *Retry) retryable(a Attempt) RetryReason {
	switch a.Outcome {
	case ConnectError:
		return RetryConnect
	case Reset:
		return RetryReset
	case Timeout:
		if r.Timeouts {
			return RetryTimeout
		}
	case ServerError:
		statuses := r.Statuses
		if statuses == nil {
			statuses = defaultRetryStatuses
		}
		if slices.Contains(statuses, a.Status) {
			return RetryStatus
		}
	case Success:
		return NoRetrySuccess
	}
	return NoRetryOutcome
}

// Wait returns the jittered pause before attempt n+1 after n attempts.
func (r *Retry) Wait(n int) time.Duration { return Backoff(n, r.Backoff, r.MaxBackoff) }

// Idempotent reports whether a request method may safely run twice
// (RFC 9110, section 9.2.2).
func Idempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}
