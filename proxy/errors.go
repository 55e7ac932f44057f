package proxy

import (
	"context"
	"errors"
	"fmt"
)

// Source says which side an error came from.
type Source uint8

const (
	FromInternal   Source = iota // a bug or a resource limit of ours
	FromDownstream               // the client: bad request, went away
	FromUpstream                 // the origin: refused, reset, timed out, garbage
)

func (s Source) String() string {
	switch s {
	case FromDownstream:
		return "downstream"
	case FromUpstream:
		return "upstream"
	}
	return "internal"
}

// Error is an error with the status the client gets and a short reason
// safe to show it; Err keeps the detail for the log.
type Error struct {
	Status int
	Reason string
	Source Source
	Err    error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%d %s", e.Status, e.Reason)
	}
	return fmt.Sprintf("%d %s: %v", e.Status, e.Reason, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with the given status and reason wrapping err.
func Errorf(status int, source Source, reason string, err error) *Error {
	return &Error{Status: status, Reason: reason, Source: source, Err: err}
}

// Errors the engine itself produces.
var (
	ErrNoRoute    = &Error{Status: 404, Reason: "no route for this request", Source: FromDownstream}
	ErrNotServed  = &Error{Status: 421, Reason: "host not served here", Source: FromDownstream}
	ErrNoUpstream = &Error{Status: 502, Reason: "route has no upstream", Source: FromInternal}
)

// StatusOf returns the status and reason the client should get for err.
func StatusOf(err error) (int, string) {
	var e *Error
	switch {
	case errors.As(err, &e):
		return e.Status, e.Reason
	case errors.Is(err, context.DeadlineExceeded):
		return 504, "upstream timed out"
	}
	return 502, "upstream failed"
}
