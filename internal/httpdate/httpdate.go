// Package httpdate formats the Date field of responses once a second, for
// every protocol's session.
package httpdate

import (
	"sync/atomic"
	"time"
)

type value struct {
	sec int64
	b   []byte
}

var cur atomic.Pointer[value]

// Now returns the current time as an HTTP-date (RFC 9110 section 5.6.7).
// The slice is shared: callers copy it and never modify it.
func Now() []byte {
	now := time.Now()
	if d := cur.Load(); d != nil && d.sec == now.Unix() {
		return d.b
	}
	d := &value{sec: now.Unix(), b: now.UTC().AppendFormat(nil, "Mon, 02 Jan 2006 15:04:05 GMT")}
	cur.Store(d)
	return d.b
}
