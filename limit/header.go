package limit

import (
	"strconv"
	"time"
)

// The field values below follow draft-ietf-httpapi-ratelimit-headers
// (RateLimit-Policy and RateLimit as Structured Field lists of one item
// each, keyed by the policy name):
//
//	RateLimit-Policy: "default";q=100;w=1
//	RateLimit: "default";r=42;t=1
//	Retry-After: 1
//
// Durations are whole seconds rounded up, so a client that waits as told is
// never early.

// AppendPolicy appends the RateLimit-Policy field value for l: its quota
// (Burst requests) and window (the time a full burst takes to refill).
func (l *Limiter) AppendPolicy(dst []byte) []byte {
	return AppendPolicy(dst, l.limit.Name, l.limit.Burst, micros(l.tolerance))
}

// AppendPolicy appends a RateLimit-Policy field value: quota requests per
// window.
func AppendPolicy(dst []byte, name string, quota int, window time.Duration) []byte {
	dst = appendSFString(dst, name)
	dst = append(dst, ";q="...)
	dst = strconv.AppendInt(dst, int64(quota), 10)
	dst = append(dst, ";w="...)
	return strconv.AppendInt(dst, seconds(window), 10)
}

// AppendRateLimit appends a RateLimit field value for policy name after
// decision d: the requests remaining and the seconds until a full reset.
func AppendRateLimit(dst []byte, name string, d Decision) []byte {
	dst = appendSFString(dst, name)
	dst = append(dst, ";r="...)
	dst = strconv.AppendInt(dst, int64(d.Remaining), 10)
	dst = append(dst, ";t="...)
	return strconv.AppendInt(dst, seconds(d.ResetAfter), 10)
}

// AppendRetryAfter appends a Retry-After field value (delay-seconds, at
// least 1) for a refused decision.
func AppendRetryAfter(dst []byte, d Decision) []byte {
	return strconv.AppendInt(dst, max(seconds(d.RetryAfter), 1), 10)
}

// seconds rounds d up to whole seconds, never below zero.
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// appendSFString appends s as an RFC 8941 sf-string: quoted, with '"' and
// '\' escaped and anything outside printable ASCII dropped.
func appendSFString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			dst = append(dst, '\\', c)
		case c >= 0x20 && c < 0x7f:
			dst = append(dst, c)
		}
	}
	return append(dst, '"')
}
