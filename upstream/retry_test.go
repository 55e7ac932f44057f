package upstream

import (
	"testing"
	"time"
)

var retryTests = []struct {
	name  string
	retry Retry
	a     Attempt
	want  RetryReason
}{
	{"success is final", Retry{}, Attempt{N: 1, Outcome: Success, Status: 200, Idempotent: true}, NoRetrySuccess},
	{"connect failure is retried even for POST with a body", Retry{}, Attempt{N: 1, Outcome: ConnectError, BodySent: true}, RetryConnect},
	{"reset on GET is retried", Retry{}, Attempt{N: 1, Outcome: Reset, Idempotent: true}, RetryReset},
	{"reset on POST is not", Retry{}, Attempt{N: 1, Outcome: Reset}, NoRetryNotIdempotent},
	{"reset on POST when the route allows", Retry{NonIdempotent: true}, Attempt{N: 1, Outcome: Reset}, RetryReset},
	{"503 on GET is retried", Retry{}, Attempt{N: 1, Outcome: ServerError, Status: 503, Idempotent: true}, RetryStatus},
	{"500 is not in the default list", Retry{}, Attempt{N: 1, Outcome: ServerError, Status: 500, Idempotent: true}, NoRetryOutcome},
	{"configured statuses replace the default", Retry{Statuses: []int{500}}, Attempt{N: 1, Outcome: ServerError, Status: 500, Idempotent: true}, RetryStatus},
	{"body sent stops a status retry", Retry{}, Attempt{N: 1, Outcome: ServerError, Status: 502, Idempotent: true, BodySent: true}, NoRetryBodySent},
	{"body sent allowed by the route", Retry{AfterBodySent: true}, Attempt{N: 1, Outcome: ServerError, Status: 502, Idempotent: true, BodySent: true}, RetryStatus},
	{"timeouts are not retried by default", Retry{}, Attempt{N: 1, Outcome: Timeout, Idempotent: true}, NoRetryOutcome},
	{"timeouts when enabled", Retry{Timeouts: true}, Attempt{N: 1, Outcome: Timeout, Idempotent: true}, RetryTimeout},
	{"third attempt is the last by default", Retry{}, Attempt{N: 3, Outcome: ConnectError}, NoRetryMaxAttempts},
	{"second attempt may retry by default", Retry{}, Attempt{N: 2, Outcome: ConnectError}, RetryConnect},
	{"one attempt disables retries", Retry{MaxAttempts: 1}, Attempt{N: 1, Outcome: ConnectError}, NoRetryMaxAttempts},
	{"canceled is not retried", Retry{}, Attempt{N: 1, Outcome: Canceled, Idempotent: true}, NoRetryOutcome},
}

func TestRetryDecisions(t *testing.T) {
	for _, tt := range retryTests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.retry.Decide(tt.a); got != tt.want {
				t.Fatalf("Decide(%+v) = %v, want %v", tt.a, got, tt.want)
			}
			if got := tt.want.Retry(); got != (tt.want >= RetryConnect) {
				t.Fatalf("%v.Retry() = %v", tt.want, got)
			}
		})
	}
}

func TestRetryReasonsHaveNames(t *testing.T) {
	for r := NoRetrySuccess; r <= RetryStatus; r++ {
		if r.String() == "" || r.String() == "unknown" {
			t.Errorf("reason %d has no name", r)
		}
	}
}

func TestIdempotentMethods(t *testing.T) {
	for m, want := range map[string]bool{"GET": true, "HEAD": true, "PUT": true, "DELETE": true, "OPTIONS": true, "TRACE": true, "POST": false, "PATCH": false, "get": false, "": false} {
		if got := Idempotent([]byte(m)); got != want {
			t.Errorf("Idempotent(%q) = %v, want %v", m, got, want)
		}
	}
}

func TestRetryWaitUsesJitteredBackoff(t *testing.T) {
	r := Retry{Backoff: 10 * time.Millisecond, MaxBackoff: 15 * time.Millisecond}
	for n := range 5 {
		if d := r.Wait(n + 1); d < 0 || d > 15*time.Millisecond {
			t.Fatalf("Wait(%d) = %v", n+1, d)
		}
	}
	if d := (&Retry{}).Wait(1); d != 0 {
		t.Fatalf("Wait without back-off = %v, want 0", d)
	}
}
