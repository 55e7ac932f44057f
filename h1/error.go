package h1

import "fmt"

// Error is a rejected message: Status is the response the server should send
// (4xx/5xx for a request, 502 for an origin's response) and Reason a short
// text safe to show the client.
type Error struct {
	Status int
	Reason string
	Err    error // underlying cause, such as io.ErrUnexpectedEOF; may be nil
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("h1: %d %s: %v", e.Status, e.Reason, e.Err)
	}
	return fmt.Sprintf("h1: %d %s", e.Status, e.Reason)
}

func (e *Error) Unwrap() error { return e.Err }

func badRequest(reason string) *Error { return &Error{Status: 400, Reason: reason} }

// ErrNotHTTP rejects a request line whose version is not HTTP at all:
// a client that is not speaking HTTP/1.x.
var ErrNotHTTP = badRequest("malformed HTTP version")

// Limits bounds what a head may hold. The zero value means the defaults.
type Limits struct {
	// MaxHeaderBytes bounds the start line plus all field lines, in bytes.
	// Zero means 64 KiB. A single line must also fit in the bufio.Reader.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of field lines. Zero means 100.
	MaxHeaders int
}

func (l Limits) withDefaults() Limits {
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = 64 << 10
	}
	if l.MaxHeaders <= 0 {
		l.MaxHeaders = 100
	}
	return l
}
