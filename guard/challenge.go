package guard

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"net/netip"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/limit"
)

// Challenge errors, returned by Verify and CheckPass. Clients should only
// ever see a 403.
var (
	ErrMalformed = errors.New("guard: malformed challenge or pass")
	ErrExpired   = errors.New("guard: challenge or pass expired")
	ErrForged    = errors.New("guard: challenge or pass not issued to this client")
	ErrUnsolved  = errors.New("guard: proof of work does not meet the difficulty")
)

// Defaults of the Challenge fields.
const (
	DefaultDifficulty   = 16
	DefaultPassTTL      = 24 * time.Hour
	DefaultChallengeTTL = 5 * time.Minute
	DefaultCookieName   = "__outpost_pass"
	DefaultVerifyPath   = "/.outpost/challenge"
	// PageContentType is the Content-Type of the challenge page. Serve it
	// with status 403, Cache-Control: no-store and the
	// Content-Security-Policy from Challenge.ContentSecurityPolicy.
	PageContentType = "text/html; charset=utf-8"
)

// Token layouts, before base64url (no padding). Both fit SHA-256's single
// 64-byte block together with a nonce, which keeps the browser's work cheap.
//
//	challenge: 'c' difficulty(1) expiry(4, Unix s) random(6) mac(12)  = 24 bytes
//	pass:      'p' expiry(4, Unix s) mac(16)                           = 21 bytes
//
// The MAC is HMAC-SHA256 over the bytes before it, the client key (whole
// IPv4 address or IPv6 /64, see limit.ClientKey) and SHA-256 of the
// User-Agent, truncated.
const (
	challengeLen    = 24
	challengeText   = challengeLen / 3 * 4 // base64 length
	challengeMACLen = 12
	passLen         = 21
	passMACLen      = 16
	maxNonceLen     = 32
)

// Challenge is a stateless proof-of-work check. A client without a valid
// pass cookie gets a page whose script finds a nonce such that
// SHA-256(challenge || nonce) starts with Difficulty zero bits and posts it
// to VerifyPath; a correct answer earns a signed cookie bound to the
// client's address (IPv6: its /64) and User-Agent, valid for PassTTL.
// Nothing is stored: challenges and passes carry their own expiry and MAC.
//
// Call Provision once, then the methods are safe for concurrent use. The
// pass check on the request path (Passed) allocates nothing.
type Challenge struct {
	// Secret keys every MAC. Nodes that share it accept each other's
	// passes. Empty means a random secret, drawn by Provision, that dies
	// with the process. Must otherwise be at least 16 bytes.
	Secret []byte
	// Difficulty is the number of leading zero bits, 1 to 32. Default 16
	// (65536 hashes on average: tens of milliseconds in a browser).
	Difficulty int
	// TTL is how long a pass cookie lasts. Default DefaultPassTTL.
	TTL time.Duration
	// ChallengeTTL is how long a page's challenge may be answered. Default
	// DefaultChallengeTTL.
	ChallengeTTL time.Duration
	// CookieName is the pass cookie's name. Default DefaultCookieName.
	CookieName string
	// VerifyPath is where the page posts its answer. Default
	// DefaultVerifyPath.
	VerifyPath string
	// Page is the HTML template, with the placeholders {{token}},
	// {{bits}}, {{action}} and {{return}}. Default DefaultPage.
	Page []byte
	// ClientIP gives the client address for ServeHTTP. Default: the
	// address of http.Request.RemoteAddr.
	ClientIP ClientIPFunc

	ipad, opad [sha256.BlockSize]byte
	page       []pagePart
	csp        string
}

// Provision fills defaults, draws a secret if none is set, and prepares the
// page template.
func (c *Challenge) Provision() error {
	if c.Difficulty == 0 {
		c.Difficulty = DefaultDifficulty
	}
	if c.Difficulty < 1 || c.Difficulty > 32 {
		return fmt.Errorf("guard: challenge difficulty %d out of 1..32", c.Difficulty)
	}
	c.TTL = cmpOr(c.TTL, DefaultPassTTL)
	c.ChallengeTTL = cmpOr(c.ChallengeTTL, DefaultChallengeTTL)
	c.CookieName = cmpOr(c.CookieName, DefaultCookieName)
	c.VerifyPath = cmpOr(c.VerifyPath, DefaultVerifyPath)
	if len(c.Page) == 0 {
		c.Page = DefaultPage
	}
	if c.ClientIP == nil {
		c.ClientIP = RemoteIP
	}
	secret := c.Secret
	switch {
	case len(secret) == 0:
		secret = make([]byte, 32)
		rand.Read(secret)
	case len(secret) < 16:
		return fmt.Errorf("guard: challenge secret of %d bytes is too short, want 16 or more", len(secret))
	case len(secret) > sha256.BlockSize:
		s := sha256.Sum256(secret)
		secret = s[:]
	}
	for i := range c.ipad {
		var k byte
		if i < len(secret) {
			k = secret[i]
		}
		c.ipad[i], c.opad[i] = k^0x36, k^0x5c
	}
	c.page = splitPage(c.Page)
	c.csp = pageCSP(c.Page)
	return nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// mac returns HMAC-SHA256 of msg (at most 128 bytes) under the secret,
// without the allocations of crypto/hmac.
func (c *Challenge) mac(msg []byte) [sha256.Size]byte {
	var in [sha256.BlockSize + 128]byte
	n := copy(in[:], c.ipad[:])
	n += copy(in[n:], msg)
	inner := sha256.Sum256(in[:n])
	var out [sha256.BlockSize + sha256.Size]byte
	copy(out[:], c.opad[:])
	copy(out[sha256.BlockSize:], inner[:])
	return sha256.Sum256(out[:])
}

// signed returns the MAC of head bound to the client's key and User-Agent.
func (c *Challenge) signed(head []byte, ip netip.Addr, ua []byte) [sha256.Size]byte {
	var msg, kb [128]byte
	key := limit.ClientKey(kb[:0], ip)
	b := append(msg[:0], head...)
	b = append(b, byte(len(key)))
	b = append(b, key...)
	uaSum := sha256.Sum256(ua)
	b = append(b, uaSum[:]...)
	return c.mac(b)
}

// NewToken returns a fresh challenge for the client, base64url-encoded.
func (c *Challenge) NewToken(dst []byte, ip netip.Addr, ua []byte, now time.Time) []byte {
	var t [challengeLen]byte
	t[0] = 'c'
	t[1] = byte(c.Difficulty)
	binary.BigEndian.PutUint32(t[2:6], uint32(now.Add(c.ChallengeTTL).Unix()))
	rand.Read(t[6:12])
	m := c.signed(t[:12], ip, ua)
	copy(t[12:], m[:challengeMACLen])
	return base64.RawURLEncoding.AppendEncode(dst, t[:])
}

// Verify checks an answer: token must be a challenge issued to this client
// and not expired, and SHA-256(token || nonce) must start with the
// challenge's number of zero bits.
func (c *Challenge) Verify(token, nonce []byte, ip netip.Addr, ua []byte, now time.Time) error {
	var t [challengeLen]byte
	if len(token) != challengeText || len(nonce) > maxNonceLen {
		return ErrMalformed
	}
	if _, err := base64.RawURLEncoding.Decode(t[:], token); err != nil || t[0] != 'c' {
		return ErrMalformed
	}
	m := c.signed(t[:12], ip, ua)
	if subtle.ConstantTimeCompare(m[:challengeMACLen], t[12:]) != 1 {
		return ErrForged
	}
	if !now.Before(time.Unix(int64(binary.BigEndian.Uint32(t[2:6])), 0)) {
		return ErrExpired
	}
	var in [challengeText + maxNonceLen]byte
	n := copy(in[:], token)
	n += copy(in[n:], nonce)
	if leadingZeroBits(sha256.Sum256(in[:n])) < int(t[1]) {
		return ErrUnsolved
	}
	return nil
}

func leadingZeroBits(sum [sha256.Size]byte) int {
	return bits.LeadingZeros32(binary.BigEndian.Uint32(sum[:4]))
}

// AppendPass appends a pass cookie for the client (name=value), valid for
// TTL.
func (c *Challenge) AppendPass(dst []byte, ip netip.Addr, ua []byte, now time.Time) []byte {
	var p [passLen]byte
	p[0] = 'p'
	binary.BigEndian.PutUint32(p[1:5], uint32(now.Add(c.TTL).Unix()))
	m := c.signed(p[:5], ip, ua)
	copy(p[5:], m[:passMACLen])
	dst = append(dst, c.CookieName...)
	dst = append(dst, '=')
	return base64.RawURLEncoding.AppendEncode(dst, p[:])
}

// AppendSetCookie appends a Set-Cookie field value carrying a pass for the
// client; secure adds the Secure attribute (set it over HTTPS).
func (c *Challenge) AppendSetCookie(dst []byte, ip netip.Addr, ua []byte, now time.Time, secure bool) []byte {
	dst = c.AppendPass(dst, ip, ua, now)
	dst = append(dst, "; Path=/; Max-Age="...)
	dst = strconv.AppendInt(dst, int64(c.TTL/time.Second), 10)
	dst = append(dst, "; HttpOnly; SameSite=Lax"...)
	if secure {
		dst = append(dst, "; Secure"...)
	}
	return dst
}

// CheckPass checks a pass cookie's value.
func (c *Challenge) CheckPass(value []byte, ip netip.Addr, ua []byte, now time.Time) error {
	var p [passLen]byte
	if len(value) != base64.RawURLEncoding.EncodedLen(passLen) {
		return ErrMalformed
	}
	if _, err := base64.RawURLEncoding.Decode(p[:], value); err != nil || p[0] != 'p' {
		return ErrMalformed
	}
	m := c.signed(p[:5], ip, ua)
	if subtle.ConstantTimeCompare(m[:passMACLen], p[5:]) != 1 {
		return ErrForged
	}
	if !now.Before(time.Unix(int64(binary.BigEndian.Uint32(p[1:5])), 0)) {
		return ErrExpired
	}
	return nil
}

// Passed reports whether req carries a valid pass for the client at ip.
func (c *Challenge) Passed(req *httphead.Request, ip netip.Addr, now time.Time) bool {
	v := cookieValue(&req.Header, c.CookieName)
	return v != nil && c.CheckPass(v, ip, req.Header.Peek("User-Agent"), now) == nil
}

// cookieValue returns the value of the first cookie called name, or nil.
func cookieValue(h *httphead.Header, name string) []byte {
	var found []byte
	h.Values("Cookie", func(v []byte) bool {
		for piece := range bytes.SplitSeq(v, []byte(";")) {
			k, val, ok := bytes.Cut(httphead.TrimOWS(piece), []byte("="))
			if ok && string(k) == name {
				found = val
				return false
			}
		}
		return true
	})
	return found
}
