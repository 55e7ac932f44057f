// Package cachecontrol parses the fields that carry cache directives:
// Cache-Control (RFC 9111 section 5.2), Surrogate-Control, and the targeted
// CDN-Cache-Control (RFC 9213), into a Directives value. It holds no policy:
// deciding what the directives mean for a response is the cache package's job.
//
// Parsing never allocates and never fails on garbage: unknown directives are
// skipped, directives that repeat keep their most restrictive value, numbers
// that overflow saturate at 2^31 seconds (RFC 9111 section 1.2.2), and an
// invalid max-age or s-maxage reads as 0, so the response is stale, as RFC
// 9111 section 4.2.1 asks.
package cachecontrol

import "bytes"

// Flag records a directive that takes no value (or whose value was given
// and recorded elsewhere).
type Flag uint32

// Directive flags.
const (
	NoStore Flag = 1 << iota
	NoCache
	Private
	Public
	MustRevalidate
	ProxyRevalidate
	MustUnderstand
	Immutable
	NoTransform
	OnlyIfCached
	// MaxStaleAny: max-stale without a value (any staleness is accepted).
	MaxStaleAny
	// NoCacheFields: no-cache carried field names and no unqualified
	// no-cache was seen; the names are in Directives.NoCacheFields.
	NoCacheFields
	// PrivateFields: the same for private.
	PrivateFields
	// InvalidMaxAge: a max-age or s-maxage value was not a valid number.
	InvalidMaxAge
)

// Unset is the value of a numeric directive that is absent.
const Unset = -1

// MaxDelta is where delta-seconds saturate (RFC 9111 section 1.2.2).
const MaxDelta = 1 << 31

// Directives is a parsed directive set. Numeric fields hold seconds, or
// Unset. NoCacheFields and PrivateFields are sub-slices of the parsed input
// (the comma-separated names, without quotes) and share its lifetime.
type Directives struct {
	Flags                Flag
	MaxAge               int64
	SMaxAge              int64
	MaxStale             int64 // request; see also MaxStaleAny
	MinFresh             int64 // request
	StaleWhileRevalidate int64
	StaleIfError         int64

	NoCacheFields []byte
	PrivateFields []byte
}

// Has reports whether every flag in f is set.
func (d *Directives) Has(f Flag) bool { return d.Flags&f == f }

// Reset empties d: no flag, every number Unset.
func (d *Directives) Reset() {
	*d = Directives{MaxAge: Unset, SMaxAge: Unset, MaxStale: Unset, MinFresh: Unset,
		StaleWhileRevalidate: Unset, StaleIfError: Unset}
}

// Parse parses one Cache-Control or Surrogate-Control field value.
func Parse(v []byte) Directives {
	var d Directives
	d.Reset()
	d.Add(v)
	return d
}

// Add merges the directives of another field line into d, so a field that
// is split over several lines parses as one list.
func (d *Directives) Add(v []byte) {
	p := lexer{in: v}
	for p.next() {
		d.apply(p.name, p.value, p.hasValue, p.quoted)
	}
}

// ParseSurrogate parses a Surrogate-Control value (Edge Architecture
// Specification 1.0): Cache-Control syntax, where a directive may carry a
// ";target" suffix (skipped) and max-age may read "60+30" (the part after
// '+' is an extension this cache does not use and is ignored).
func ParseSurrogate(v []byte) Directives {
	var d Directives
	d.Reset()
	p := lexer{in: v}
	for p.next() {
		if i := bytes.IndexByte(p.value, '+'); i > 0 && !p.quoted {
			p.value = p.value[:i]
		}
		d.apply(p.name, p.value, p.hasValue, p.quoted)
	}
	return d
}

// ParseTargeted parses a CDN-Cache-Control style field (RFC 9213), a
// Structured Field dictionary (RFC 8941): parameters are ignored and "?0"
// turns a directive off. ok is false when the value is empty or not a
// valid dictionary for these directives (a key that is not an sf-key, an
// unterminated string, a stray character, a delta-seconds directive whose
// value is not an integer, such as max-age="60"), and the caller must
// then ignore the whole field as RFC 9213 section 2.1 requires: a field
// partly obeyed could override what Cache-Control says.
func ParseTargeted(v []byte) (d Directives, ok bool) {
	d.Reset()
	p := lexer{in: v, sf: true}
	n := 0
	for p.next() {
		n++
		if !sfKey(p.name) || deltaDirective(p.name) && (!p.hasValue || p.quoted || !isInteger(p.value)) {
			return d, false
		}
		if p.hasValue && !p.quoted && string(p.value) == "?0" {
			continue
		}
		if p.hasValue && !p.quoted && string(p.value) == "?1" {
			p.hasValue = false
		}
		d.apply(p.name, p.value, p.hasValue, p.quoted)
	}
	return d, n > 0 && !p.broken
}

// sfKey reports whether b is a Structured Field key (RFC 8941 section
// 3.1.2): a lowercase letter or "*", then lowercase letters, digits, "_",
// "-", "." and "*".
func sfKey(b []byte) bool {
	if len(b) == 0 || !(b[0] >= 'a' && b[0] <= 'z' || b[0] == '*') {
		return false
	}
	for _, c := range b[1:] {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.' || c == '*') {
			return false
		}
	}
	return true
}

// deltaDirective reports whether a targeted directive takes delta-seconds,
// an sf-integer in a targeted field.
func deltaDirective(name []byte) bool {
	switch string(name) {
	case "max-age", "s-maxage", "stale-while-revalidate", "stale-if-error":
		return true
	}
	return false
}

// isInteger reports whether b is an sf-integer of up to 15 digits.
func isInteger(b []byte) bool {
	if len(b) > 0 && b[0] == '-' {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 15 {
		return false
	}
	for _, c := range b {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// apply records one directive, keeping the most restrictive value when a
// directive repeats.
func (d *Directives) apply(name, value []byte, hasValue, quoted bool) {
	var lower [24]byte
	if len(name) > len(lower) {
		return
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	switch string(lower[:len(name)]) {
	case "max-age":
		d.MaxAge = minSet(d.MaxAge, d.freshness(value, hasValue))
	case "s-maxage":
		d.SMaxAge = minSet(d.SMaxAge, d.freshness(value, hasValue))
	case "stale-while-revalidate":
		if n, ok := delta(value, hasValue); ok {
			d.StaleWhileRevalidate = minSet(d.StaleWhileRevalidate, n)
		}
	case "stale-if-error":
		if n, ok := delta(value, hasValue); ok {
			d.StaleIfError = minSet(d.StaleIfError, n)
		}
	case "max-stale":
		switch n, ok := delta(value, hasValue); {
		case !hasValue:
			d.Flags |= MaxStaleAny
		case ok:
			d.MaxStale = minSet(d.MaxStale, n)
		}
	case "min-fresh":
		if n, ok := delta(value, hasValue); ok && n > d.MinFresh {
			d.MinFresh = n
		}
	case "no-cache":
		d.NoCacheFields = d.qualified(NoCache, NoCacheFields, d.NoCacheFields, value, hasValue)
	case "private":
		d.PrivateFields = d.qualified(Private, PrivateFields, d.PrivateFields, value, hasValue)
	case "no-store":
		d.Flags |= NoStore
	case "public":
		d.Flags |= Public
	case "must-revalidate":
		d.Flags |= MustRevalidate
	case "proxy-revalidate":
		d.Flags |= ProxyRevalidate
	case "must-understand":
		d.Flags |= MustUnderstand
	case "immutable":
		d.Flags |= Immutable
	case "no-transform":
		d.Flags |= NoTransform
	case "only-if-cached":
		d.Flags |= OnlyIfCached
	}
}

// freshness reads a max-age or s-maxage value; an invalid one counts as 0
// (stale) and is flagged.
func (d *Directives) freshness(value []byte, hasValue bool) int64 {
	n, ok := delta(value, hasValue)
	if !ok {
		d.Flags |= InvalidMaxAge
		return 0
	}
	return n
}

// qualified records no-cache or private. The unqualified form is the more
// restrictive one and wins; with field names only, the first list is kept.
func (d *Directives) qualified(all, some Flag, fields, value []byte, hasValue bool) []byte {
	if !hasValue || len(trimOWS(value)) == 0 {
		d.Flags = d.Flags&^some | all
		return nil
	}
	if d.Flags&all != 0 && d.Flags&some == 0 {
		return nil // already unqualified
	}
	d.Flags |= all | some
	if fields == nil {
		fields = trimOWS(value)
	}
	return fields
}

func minSet(cur, n int64) int64 {
	if cur == Unset || n < cur {
		return n
	}
	return cur
}

// delta parses delta-seconds: one or more digits, saturating at MaxDelta.
func delta(b []byte, hasValue bool) (int64, bool) {
	if !hasValue || len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < MaxDelta {
			n = n*10 + int64(c-'0')
		}
	}
	return min(n, MaxDelta), true
}

func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// lexer splits a directive list into name[=value] members. Surrogate-Control
// targets ("max-age=60;edge1") and Structured Field parameters after ';' are
// skipped. A quoted value is returned without its quotes, escapes left as
// they are.
type lexer struct {
	in       []byte
	sf       bool // Structured Field dictionary: note structural errors
	broken   bool
	name     []byte
	value    []byte
	hasValue bool
	quoted   bool
}

func (p *lexer) next() bool {
	for {
		i := 0
		for i < len(p.in) && (p.in[i] == ' ' || p.in[i] == '\t' || p.in[i] == ',') {
			i++
		}
		p.in = p.in[i:]
		if len(p.in) == 0 {
			return false
		}
		p.name, p.value, p.hasValue, p.quoted = p.token(), nil, false, false
		p.skipOWS()
		if len(p.in) > 0 && p.in[0] == '=' {
			p.in = p.in[1:]
			p.skipOWS()
			p.hasValue = true
			p.readValue()
		}
		p.skipOWS()
		if len(p.in) > 0 && p.in[0] != ',' {
			// parameters or junk up to the next member
			if p.sf && p.in[0] != ';' {
				p.broken = true
			}
			p.skipMember()
		}
		if len(p.name) > 0 {
			return true
		}
		if p.sf {
			p.broken = true
		}
	}
}

func (p *lexer) readValue() {
	if len(p.in) > 0 && p.in[0] == '"' {
		p.quoted = true
		for i := 1; i < len(p.in); i++ {
			switch p.in[i] {
			case '\\':
				i++
			case '"':
				p.value, p.in = p.in[1:i], p.in[i+1:]
				return
			}
		}
		// unterminated: take the rest, note it for Structured Fields
		p.value, p.in = p.in[1:], nil
		p.broken = p.broken || p.sf
		return
	}
	p.value = p.token()
}

// token reads up to a separator of the list.
func (p *lexer) token() []byte {
	i := 0
	for i < len(p.in) {
		c := p.in[i]
		if c == ',' || c == '=' || c == ';' || c == ' ' || c == '\t' || c == '"' {
			break
		}
		i++
	}
	t := p.in[:i]
	p.in = p.in[i:]
	return t
}

// skipMember skips to the next top-level comma, stepping over quoted strings.
func (p *lexer) skipMember() {
	for i := 0; i < len(p.in); i++ {
		switch p.in[i] {
		case '"':
			j := i + 1
			for j < len(p.in) && p.in[j] != '"' {
				if p.in[j] == '\\' {
					j++
				}
				j++
			}
			if j >= len(p.in) {
				p.broken = p.broken || p.sf
			}
			i = j
		case ',':
			p.in = p.in[i:]
			return
		}
	}
	p.in = nil
}

func (p *lexer) skipOWS() {
	i := 0
	for i < len(p.in) && (p.in[i] == ' ' || p.in[i] == '\t') {
		i++
	}
	p.in = p.in[i:]
}
