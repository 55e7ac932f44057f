package config

import (
	"crypto/tls"
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// parseDuration reads a Go duration ("1.5s", "10m", "2h30m") or a number of
// days ("1d", "365d", "1.5d", "1d12h"). A bare "0" is zero; other bare numbers
// are rejected because the unit would be a guess.
func parseDuration(s string) (time.Duration, error) {
	bad := fmt.Errorf("bad duration %q: want a duration such as 90s, 1.5s, 10m or 1d", s)
	if s == "" {
		return 0, bad
	}
	days, rest, hasDays := strings.Cut(s, "d")
	if !hasDays {
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, bad
		}
		return checkNegative(d, s)
	}
	n, err := strconv.ParseFloat(days, 64)
	if err != nil || strings.ContainsAny(days, "eEinfINFxX+_") || math.IsNaN(n) {
		return 0, bad
	}
	const maxDays = float64(math.MaxInt64) / float64(24*time.Hour)
	if math.Abs(n) > maxDays {
		return 0, fmt.Errorf("duration %q is too long", s)
	}
	d := time.Duration(n * float64(24*time.Hour))
	if rest != "" {
		more, err := time.ParseDuration(rest)
		if err != nil || more < 0 || strings.HasPrefix(rest, "+") {
			return 0, bad
		}
		if d > math.MaxInt64-more {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		d += more
	}
	return checkNegative(d, s)
}

func checkNegative(d time.Duration, s string) (time.Duration, error) {
	if d < 0 {
		return 0, fmt.Errorf("duration %q must not be negative", s)
	}
	return d, nil
}

// Size is a number of bytes. In the file it is written as plain bytes
// ("65536") or with a unit: B, KB, MB, GB, TB (powers of 1000) or KiB, MiB,
// GiB, TiB (powers of 1024); units are case-insensitive and fractions are
// allowed ("1.5GiB").
type Size int64

var sizeUnits = []struct {
	name string
	mult float64
}{
	{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"tib", 1 << 40},
	{"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"tb", 1e12}, {"b", 1},
}

// UnmarshalText parses a size such as "64KiB", "10MB" or "1048576".
func (s *Size) UnmarshalText(text []byte) error {
	str := strings.TrimSpace(string(text))
	num, mult := str, 1.0
	lower := strings.ToLower(str)
	for _, u := range sizeUnits {
		if strings.HasSuffix(lower, u.name) {
			num, mult = strings.TrimSpace(str[:len(str)-len(u.name)]), u.mult
			break
		}
	}
	n, err := strconv.ParseFloat(num, 64)
	if err != nil || num == "" || strings.ContainsAny(num, "eEinfINFxX+_") {
		return fmt.Errorf("bad size %q: want bytes or a number with a unit such as 64KiB, 256MiB, 10MB", str)
	}
	if n < 0 {
		return fmt.Errorf("size %q must not be negative", str)
	}
	v := n * mult
	if v >= math.MaxInt64 {
		return fmt.Errorf("size %q is too large", str)
	}
	*s = Size(math.Round(v))
	return nil
}

// MarshalText writes the size with the largest binary unit that divides it
// exactly, or as plain bytes.
func (s Size) MarshalText() ([]byte, error) {
	units := []string{"TiB", "GiB", "MiB", "KiB"}
	for i, u := range units {
		m := Size(1) << (10 * (len(units) - i))
		if s != 0 && s%m == 0 {
			return []byte(strconv.FormatInt(int64(s/m), 10) + u), nil
		}
	}
	return []byte(strconv.FormatInt(int64(s), 10)), nil
}

// String is the size as written by MarshalText.
func (s Size) String() string {
	b, _ := s.MarshalText()
	return string(b)
}

// parsePrefix reads a CIDR ("10.0.0.0/8", "2001:db8::/32") or a single
// address, which stands for a /32 or /128. The prefix is masked, so
// "10.1.2.3/8" becomes "10.0.0.0/8".
func parsePrefix(s string) (netip.Prefix, error) {
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address or a prefix such as 10.0.0.0/8", s)
		}
		return netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad CIDR %q: want an address or a prefix such as 10.0.0.0/8", s)
	}
	return p.Masked(), nil
}

// KeyKind says where a per-request key, used for hashing or rate limiting,
// comes from.
type KeyKind uint8

// Key kinds, written in the file as shown in each comment.
const (
	KeyNone     KeyKind = iota // unset
	KeyURL                     // "url": the request path and query
	KeyClientIP                // "client_ip": the client address, after trusted_proxies
	KeyIPv6Net                 // "ipv6_64": the client's /64 for IPv6, its address for IPv4
	KeyHeader                  // "header:NAME": a request header value
	KeyCookie                  // "cookie:NAME": a request cookie value
	KeyRoute                   // "route": the route name, one bucket per route
	KeyExpr                    // "expr:SOURCE": a string expression of package config/expr
)

var keyNames = [...]string{KeyNone: "", KeyURL: "url", KeyClientIP: "client_ip",
	KeyIPv6Net: "ipv6_64", KeyHeader: "header", KeyCookie: "cookie", KeyRoute: "route", KeyExpr: "expr"}

// String is the kind as written in the file, without the ":NAME" part.
func (k KeyKind) String() string {
	if int(k) < len(keyNames) {
		return keyNames[k]
	}
	return "KeyKind(" + strconv.Itoa(int(k)) + ")"
}

// hasName reports whether the kind is written "kind:NAME".
func (k KeyKind) hasName() bool { return k == KeyHeader || k == KeyCookie || k == KeyExpr }

// KeySource is a parsed key such as "client_ip" or "header:X-Api-Key".
// The zero value is unset.
type KeySource struct {
	Kind KeyKind // where the key comes from
	Name string  // header or cookie name, or expression source; "" for other kinds
}

// UnmarshalText parses "url", "client_ip", "ipv6_64", "route",
// "header:NAME", "cookie:NAME" or "expr:SOURCE". Which kinds a setting
// accepts is checked by Validate.
func (k *KeySource) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "" {
		*k = KeySource{}
		return nil
	}
	kind, name, hasName := strings.Cut(s, ":")
	for i, n := range keyNames {
		if n == "" || n != kind {
			continue
		}
		ks := KeySource{Kind: KeyKind(i), Name: strings.TrimSpace(name)}
		switch {
		case ks.Kind.hasName() && ks.Name == "":
			return fmt.Errorf("key %q needs a name after the colon, as in %s:NAME", s, kind)
		case !ks.Kind.hasName() && hasName:
			return fmt.Errorf("key %q takes no name after the colon", s)
		case (ks.Kind == KeyHeader || ks.Kind == KeyCookie) && !isToken(ks.Name):
			return fmt.Errorf("key %q: %q is not a valid %s name", s, ks.Name, kind)
		}
		*k = ks
		return nil
	}
	return fmt.Errorf("unknown key %q: want url, client_ip, ipv6_64, route, header:NAME, cookie:NAME or expr:SOURCE", s)
}

// MarshalText writes the key as UnmarshalText reads it.
func (k KeySource) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// String is the key as written in the file.
func (k KeySource) String() string {
	if k.Kind.hasName() {
		return k.Kind.String() + ":" + k.Name
	}
	return k.Kind.String()
}

// StatusRange is an inclusive range of HTTP status codes, written "200-399"
// or "204". The zero value is unset.
type StatusRange struct {
	Low  int // lowest status in the range
	High int // highest status in the range, at least Low
}

// UnmarshalText parses "200-399" or a single code such as "204".
func (r *StatusRange) UnmarshalText(text []byte) error {
	s := string(text)
	lo, hi, isRange := strings.Cut(s, "-")
	if !isRange {
		hi = lo
	}
	l, err1 := strconv.Atoi(strings.TrimSpace(lo))
	h, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if err1 != nil || err2 != nil || l < 100 || h > 599 || l > h {
		return fmt.Errorf("bad status range %q: want codes from 100 to 599 such as 200-399 or 204", s)
	}
	*r = StatusRange{l, h}
	return nil
}

// MarshalText writes the range as UnmarshalText reads it.
func (r StatusRange) MarshalText() ([]byte, error) {
	if r.Low == r.High {
		return []byte(strconv.Itoa(r.Low)), nil
	}
	return []byte(strconv.Itoa(r.Low) + "-" + strconv.Itoa(r.High)), nil
}

// Contains reports whether status lies in the range.
func (r StatusRange) Contains(status int) bool { return status >= r.Low && status <= r.High }

// TLSVersion is a TLS protocol version as crypto/tls numbers it, written
// "1.2" or "1.3" in the file. The zero value means the default (1.2).
type TLSVersion uint16

// UnmarshalText parses "1.2" or "1.3".
func (v *TLSVersion) UnmarshalText(text []byte) error {
	switch string(text) {
	case "1.2":
		*v = tls.VersionTLS12
	case "1.3":
		*v = tls.VersionTLS13
	default:
		return fmt.Errorf("bad TLS version %q: want 1.2 or 1.3", text)
	}
	return nil
}

// MarshalText writes "1.2" or "1.3"; another version, which only Go code
// can set and Validate refuses, is written in hex.
func (v TLSVersion) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// String is the version as written in the file.
func (v TLSVersion) String() string {
	switch v {
	case 0, tls.VersionTLS12:
		return "1.2"
	case tls.VersionTLS13:
		return "1.3"
	}
	return fmt.Sprintf("%#04x", uint16(v))
}

// isToken reports whether s is an RFC 9110 token, the syntax of header
// names and methods.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}
