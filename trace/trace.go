// Package trace records every decision the engine makes for one request:
// the route chosen, the cache key, hit or miss and why, where the TTL came
// from, the upstream picked, each attempt and retry, and the timings. One
// Trace feeds the access log, the debug response header and the fiddle.
//
// A Trace is reused across requests (Reset), and recording an event copies
// only into its own buffers, so tracing costs no allocation in steady state.
package trace

import (
	"strconv"
	"time"
)

// Event is one decision: which stage made it, what it decided, and why.
type Event struct {
	At     time.Duration // since the request started
	Stage  string        // "route", "cache", "upstream", "retry", "limit", ...
	Detail string        // what was decided, e.g. "hit" or "127.0.0.1:8081"
}

// Trace is the decision record of one request. The zero value is ready.
type Trace struct {
	Start  time.Time
	Events []Event
	// Follow, when set, is given the trace of each piece of work detached
	// from the request (a cache fill that outlives it, a
	// stale-while-revalidate refresh) and is passed on to it: the fiddle
	// shows those decisions with the request. Nil in production.
	Follow func(*Trace)
}

// Reset clears the trace for the next request, keeping its storage.
func (t *Trace) Reset(start time.Time) {
	t.Start = start
	t.Events = t.Events[:0]
}

// Add records a decision. Stage and detail should be constants or strings
// that already exist; formatting a new string for every request costs an
// allocation on the hot path.
func (t *Trace) Add(stage, detail string) {
	t.Events = append(t.Events, Event{At: time.Since(t.Start), Stage: stage, Detail: detail})
}

// Find returns the detail of the last event of the given stage, or "".
func (t *Trace) Find(stage string) string {
	for i := len(t.Events) - 1; i >= 0; i-- {
		if t.Events[i].Stage == stage {
			return t.Events[i].Detail
		}
	}
	return ""
}

// AppendHeader appends the trace in the compact one-line form used by the
// debug response header: "stage=detail; stage=detail; ...; total=1.2ms".
func (t *Trace) AppendHeader(dst []byte) []byte {
	for i, e := range t.Events {
		if i > 0 {
			dst = append(dst, "; "...)
		}
		dst = append(dst, e.Stage...)
		dst = append(dst, '=')
		dst = append(dst, e.Detail...)
	}
	dst = append(dst, "; total="...)
	dst = strconv.AppendFloat(dst, float64(time.Since(t.Start).Microseconds())/1000, 'f', 3, 64)
	return append(dst, "ms"...)
}
