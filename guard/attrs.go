package guard

import (
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unsafe"

	"github.com/outpost-edge/outpost/httphead"
)

// Attrs are what rules look at for one request: the client address, the
// TLS fingerprint of its connection and the request head. Derived values
// (JA4H, anomalies) are computed on first use and kept until Reset, so an
// Attrs reused across requests allocates nothing in steady state. An Attrs
// belongs to one request at a time.
type Attrs struct {
	IP      netip.Addr
	JA4     string // of the TLS connection; "" over plain TCP
	Request *httphead.Request
	// Now is the time of the request, for rate conditions. Zero means the
	// clock is read when a rule first needs it.
	Now time.Time

	ja4h      []byte
	ua        []byte // User-Agent as sent
	agent     []byte // User-Agent in lowercase
	anomalies Anomaly
	derived   uint8 // which of the fields above are computed
}

const (
	haveJA4H = 1 << iota
	haveUA
	haveAgent
	haveAnomalies
)

// Reset points a at a new request, keeping its storage. It clears Now;
// set that after Reset.
func (a *Attrs) Reset(ip netip.Addr, ja4 string, req *httphead.Request) {
	*a = Attrs{IP: ip, JA4: ja4, Request: req, ja4h: a.ja4h[:0], agent: a.agent[:0]}
}

// JA4H returns the request's JA4H fingerprint. The slice is a's own and
// stays valid until Reset.
func (a *Attrs) JA4H() []byte {
	if a.derived&haveJA4H == 0 && a.Request != nil {
		a.ja4h = AppendJA4H(a.ja4h[:0], a.Request)
		a.derived |= haveJA4H
	}
	return a.ja4h
}

// UserAgent returns the User-Agent value, nil when absent.
func (a *Attrs) UserAgent() []byte {
	if a.derived&haveUA == 0 && a.Request != nil {
		a.ua = a.Request.Header.Peek("User-Agent")
		a.derived |= haveUA
	}
	return a.ua
}

func (a *Attrs) now() time.Time {
	if a.Now.IsZero() {
		a.Now = time.Now()
	}
	return a.Now
}

// lowerAgent returns the User-Agent in ASCII lowercase, so that rules
// search it for lowercase words with the fast bytes.Contains.
func (a *Attrs) lowerAgent() []byte {
	if a.derived&haveAgent == 0 {
		a.agent = append(a.agent[:0], a.UserAgent()...)
		for i, c := range a.agent {
			a.agent[i] = lower(c)
		}
		a.derived |= haveAgent
	}
	return a.agent
}

func (a *Attrs) path() []byte {
	if a.Request == nil {
		return nil
	}
	return a.Request.Path
}

// Anomaly is a set of things about a request head that real browsers do
// not do. A browser User-Agent over a TLS fingerprint that is not a
// browser's is left to rules over JA4: which fingerprints belong to
// browsers changes with every release.
type Anomaly uint16

const (
	// AnomalyNoUserAgent: the request has no User-Agent.
	AnomalyNoUserAgent Anomaly = 1 << iota
	// AnomalyBrowserNoAccept: a browser User-Agent without Accept.
	AnomalyBrowserNoAccept
	// AnomalyBrowserNoLanguage: a browser User-Agent without
	// Accept-Language.
	AnomalyBrowserNoLanguage
	// AnomalyBrowserNoEncoding: a browser User-Agent without
	// Accept-Encoding.
	AnomalyBrowserNoEncoding
	// AnomalyBrowserHTTP10: a browser User-Agent over HTTP/1.0, which no
	// current browser speaks.
	AnomalyBrowserHTTP10
)

var anomalyNames = [...]string{"no_user_agent", "browser_no_accept", "browser_no_language", "browser_no_encoding", "browser_http10"}

// AnomalyNames lists the names ParseAnomaly accepts, in bit order.
func AnomalyNames() []string { return anomalyNames[:] }

func (m Anomaly) String() string {
	var b strings.Builder
	for i, n := range anomalyNames {
		if m&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// ParseAnomaly returns the anomaly named s, as String spells it.
func ParseAnomaly(s string) (Anomaly, error) {
	for i, n := range anomalyNames {
		if n == s {
			return 1 << i, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown anomaly %q", ErrBadRule, s)
}

// Anomalies returns the anomalies of the request head.
func (a *Attrs) Anomalies() Anomaly {
	if a.derived&haveAnomalies == 0 && a.Request != nil {
		a.anomalies = anomaliesOf(a.Request, a.UserAgent())
		a.derived |= haveAnomalies
	}
	return a.anomalies
}

func anomaliesOf(req *httphead.Request, ua []byte) Anomaly {
	h := &req.Header
	if len(ua) == 0 {
		return AnomalyNoUserAgent
	}
	if !isBrowserAgent(ua) {
		return 0
	}
	var m Anomaly
	if !h.Has("Accept") {
		m |= AnomalyBrowserNoAccept
	}
	if !h.Has("Accept-Language") {
		m |= AnomalyBrowserNoLanguage
	}
	if !h.Has("Accept-Encoding") {
		m |= AnomalyBrowserNoEncoding
	}
	if req.ProtoMajor == 1 && req.ProtoMinor == 0 {
		m |= AnomalyBrowserHTTP10
	}
	return m
}

// isBrowserAgent reports whether a User-Agent claims to be a web browser:
// every current browser's starts with "Mozilla/5.0".
func isBrowserAgent(ua []byte) bool {
	return len(ua) >= 8 && string(ua[:8]) == "Mozilla/"
}

// b2s views b as a string without copying, for comparisons that do not
// keep the string.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
