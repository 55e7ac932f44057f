// Package accesslog writes one JSON object per request. Lines are built by
// appending into a reused buffer (no encoding/json, no maps) and written
// through a buffer flushed once a second and on Close, so logging costs the
// hot path no allocation and, usually, no system call.
package accesslog

import (
	"bufio"
	"io"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Logger writes access log lines to w. It is safe for concurrent use.
type Logger struct {
	mu   sync.Mutex
	bw   *bufio.Writer
	done chan struct{}
	once sync.Once
}

// New returns a Logger writing to w and flushing every interval (default 1s).
func New(w io.Writer, interval time.Duration) *Logger {
	if interval <= 0 {
		interval = time.Second
	}
	l := &Logger{bw: bufio.NewWriterSize(w, 64<<10), done: make(chan struct{})}
	go l.flushEvery(interval)
	return l
}

func (l *Logger) flushEvery(d time.Duration) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.Flush()
		case <-l.done:
			return
		}
	}
}

// Flush writes buffered lines out.
func (l *Logger) Flush() {
	l.mu.Lock()
	_ = l.bw.Flush()
	l.mu.Unlock()
}

// Close flushes and stops the flusher.
func (l *Logger) Close() {
	l.once.Do(func() { close(l.done) })
	l.Flush()
}

// Write writes one finished line (from a Line).
func (l *Logger) Write(line []byte) {
	l.mu.Lock()
	_, _ = l.bw.Write(line)
	l.mu.Unlock()
}

// Line builds one JSON object. The zero value is ready; Reset reuses it.
type Line struct {
	b []byte
}

// Reset starts a new line.
func (j *Line) Reset() { j.b = append(j.b[:0], '{') }

func (j *Line) key(k string) {
	if len(j.b) > 1 {
		j.b = append(j.b, ',')
	}
	j.b = append(j.b, '"')
	j.b = append(j.b, k...)
	j.b = append(j.b, '"', ':')
}

// Str adds a string field.
func (j *Line) Str(k, v string) {
	j.key(k)
	j.b = appendQuoted(j.b, v)
}

// Bytes adds a string field from bytes.
func (j *Line) Bytes(k string, v []byte) {
	j.key(k)
	j.b = appendQuoted(j.b, string(v)) // the conversion does not escape: no allocation
}

// Int adds a number field.
func (j *Line) Int(k string, v int64) {
	j.key(k)
	j.b = strconv.AppendInt(j.b, v, 10)
}

// Float adds a number field with 3 decimals.
func (j *Line) Float(k string, v float64) {
	j.key(k)
	j.b = strconv.AppendFloat(j.b, v, 'f', 3, 64)
}

// Addr adds an IP address as a string field.
func (j *Line) Addr(k string, ip netip.Addr) {
	j.key(k)
	j.b = append(j.b, '"')
	j.b = ip.Unmap().AppendTo(j.b)
	j.b = append(j.b, '"')
}

// Time adds an RFC 3339 timestamp with milliseconds.
func (j *Line) Time(k string, t time.Time) {
	j.key(k)
	j.b = append(j.b, '"')
	j.b = t.UTC().AppendFormat(j.b, "2006-01-02T15:04:05.000Z07:00")
	j.b = append(j.b, '"')
}

// End closes the object and returns the line, valid until the next Reset.
func (j *Line) End() []byte {
	j.b = append(j.b, '}', '\n')
	return j.b
}

const hex = "0123456789abcdef"

// appendQuoted appends s as a JSON string; invalid UTF-8 becomes U+FFFD,
// so a hostile header cannot break the log's format.
func appendQuoted(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
