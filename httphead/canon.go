package httphead

import (
	"bytes"
	"net/netip"
)

// The canonical request. Every protocol's session fills a Request through
// SetLine and refuses it unless Validate passes, so routing, protection
// rules, rate-limit keys, the cache key and purges all see one identity:
//
//   - Scheme: how the client reached us.
//   - Host: the authority in lower case, without a trailing dot and
//     without the scheme's default port ("Shop.Example.:443" over https is
//     "shop.example"); a CONNECT target keeps its port.
//   - Path: the path normalised as RFC 3986 section 6.2.2 says:
//     percent-escapes of unreserved characters decoded, the hex digits of
//     the others in upper case, dot-segments removed (also when they were
//     escaped: "%2e%2e" is ".."), then "//" merged and "%2F" handled as
//     the PathPolicy says.
//
// Target keeps the request-target as sent, for logs; what goes upstream
// is Path and Query unless the policy forwards the target as sent.

// Invalid is a request the canonical checks refuse: Status is the answer
// (400 unless said otherwise) and Reason a short text safe to show the
// client.
type Invalid struct {
	Status int
	Reason string
}

func (e *Invalid) Error() string { return e.Reason }

// EncodedSlash says what "%2F" in a path means.
type EncodedSlash uint8

const (
	// SlashKeep keeps "%2F" as data inside a segment (the default): it
	// neither separates segments nor takes part in dot-segment removal.
	SlashKeep EncodedSlash = iota
	// SlashDecode turns "%2F" into "/" before dot-segments are removed,
	// for origins that decode it (many application servers do).
	SlashDecode
	// SlashReject answers 400 to a path holding "%2F".
	SlashReject
)

// PathPolicy says how a path is normalised. The zero value is the safe
// default: "//" merged, "%2F" kept encoded, the normalised path forwarded.
type PathPolicy struct {
	// KeepSlashes keeps empty segments ("/a//b") for origins where they
	// name different objects (object stores). Default: merged to "/a/b".
	KeepSlashes  bool
	EncodedSlash EncodedSlash
	// ForwardAsSent sends the request-target upstream exactly as the
	// client sent it. Default: the normalised path and the query, so the
	// origin sees the path that routing and the rules saw.
	ForwardAsSent bool
}

// Validate checks the request against RFC 9110, 9112 and 3986 the same way
// whatever protocol it came over: the method is a token, the target has
// the form its method allows and only visible ASCII, the authority is a
// host and port, and the path normalised without error. HTTP/1.1 and
// HTTP/2 requests must name a host. It returns an *Invalid.
func (r *Request) Validate() error {
	if !IsToken(r.Method) {
		return &Invalid{400, "invalid method"}
	}
	if reason := checkTarget(r.Method, r.Target); reason != "" {
		return &Invalid{400, reason}
	}
	if len(r.Host) == 0 && r.ProtoMajor == 2 && !r.IsMethod("OPTIONS") {
		return &Invalid{400, "missing :authority"} // HTTP/1.1's Host field is checked by its codec
	}
	if len(r.Host) > 0 && !ValidAuthority(r.Host) {
		return &Invalid{400, "invalid host"}
	}
	if r.invalid != "" {
		return &Invalid{400, r.invalid}
	}
	return nil
}

// checkTarget accepts the four request-target forms of RFC 9112 section
// 3.2, each only with the method it belongs to, and only visible ASCII.
func checkTarget(method, target []byte) string {
	if len(target) == 0 {
		return "empty request target"
	}
	for _, c := range target {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return "invalid byte in request target"
		}
	}
	switch {
	case target[0] == '/':
		return ""
	case string(target) == "*":
		if string(method) != "OPTIONS" {
			return "asterisk-form outside OPTIONS"
		}
		return ""
	case string(method) == "CONNECT":
		if target[0] == ':' || !ValidAuthority(target) {
			return "invalid authority in CONNECT target"
		}
		return ""
	}
	authority, _, ok := SplitAbsolute(target)
	if !ok || len(authority) == 0 || !ValidAuthority(authority) {
		return "invalid absolute-form target"
	}
	return ""
}

// SplitAbsolute splits an http or https absolute-form target into its
// authority and the path-and-query after it.
func SplitAbsolute(t []byte) (authority, rest []byte, ok bool) {
	i := bytes.Index(t, []byte("://"))
	if i < 0 || !(EqualFold(t[:i], "http") || EqualFold(t[:i], "https")) {
		return nil, nil, false
	}
	t = t[i+3:]
	j := bytes.IndexAny(t, "/?")
	if j < 0 {
		return t, nil, true
	}
	return t[:j], t[j:], true
}

// Byte classes from RFC 9110 section 5.6.2 (tchar) and 5.5 (field-vchar),
// and RFC 3986 section 3.2.2 (reg-name) and 2.3 (unreserved).
var (
	tchar      = byteClass(func(c byte) bool { return isAlnum(c) || bytes.IndexByte([]byte("!#$%&'*+-.^_`|~"), c) >= 0 })
	hostChar   = byteClass(func(c byte) bool { return isAlnum(c) || bytes.IndexByte([]byte("-._~!$&'()*+,;="), c) >= 0 })
	unreserved = byteClass(func(c byte) bool { return isAlnum(c) || bytes.IndexByte([]byte("-._~"), c) >= 0 })
	fieldVchar = byteClass(func(c byte) bool { return c == ' ' || c == '\t' || (c > 0x20 && c != 0x7f) }) // RFC 9110 section 5.5: VCHAR, obs-text, SP, HTAB
)

// IsFieldByte reports whether c may appear in a field value (RFC 9110
// section 5.5: visible characters, obs-text, space and tab).
func IsFieldByte(c byte) bool { return fieldVchar[c] }

func byteClass(in func(c byte) bool) (class [256]bool) {
	for c := range class {
		class[c] = in(byte(c))
	}
	return class
}

func isAlnum(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// IsHex reports whether c is a hexadecimal digit.
func IsHex(c byte) bool { return isDigit(c) || 'a' <= c|0x20 && c|0x20 <= 'f' }

// IsToken reports whether b is a non-empty token (RFC 9110 section 5.6.2).
func IsToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !tchar[c] {
			return false
		}
	}
	return true
}

// IsTokenChar reports whether c may appear in a token.
func IsTokenChar(c byte) bool { return tchar[c] }

// ValidAuthority checks host [":" port] with host a reg-name or an IPv6
// literal in brackets. Userinfo is not allowed.
func ValidAuthority(a []byte) bool {
	host, port := a, []byte(nil)
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || !validIPv6(a[1:end]) {
			return false
		}
		host, port = nil, a[end+1:]
		if len(port) > 0 && port[0] != ':' {
			return false
		}
	} else if i := bytes.IndexByte(a, ':'); i >= 0 {
		host, port = a[:i], a[i:]
	}
	for _, c := range host {
		if !hostChar[c] {
			return false
		}
	}
	for _, c := range port[min(1, len(port)):] {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// validIPv6 reports whether b is an IPv6 address without a zone. Bracketed
// hosts are rare, so the conversion to string is acceptable here.
func validIPv6(b []byte) bool {
	for _, c := range b {
		if !IsHex(c) && c != ':' && c != '.' {
			return false
		}
	}
	ip, err := netip.ParseAddr(string(b))
	return err == nil && ip.Is6()
}

// canonicalHost rewrites a lowercased authority in place into its
// canonical form and returns it: no trailing dot on the name, no empty
// port, no default port for the scheme.
func canonicalHost(h, scheme []byte) []byte {
	name, port := h, []byte(nil)
	if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[i:], ']') < 0 {
		name, port = h[:i], h[i+1:]
	}
	if len(port) == 0 ||
		string(port) == "80" && string(scheme) == "http" ||
		string(port) == "443" && string(scheme) == "https" {
		port = nil
	}
	if n := len(name); n > 1 && name[n-1] == '.' && name[0] != '[' {
		name = name[:n-1]
	}
	if port == nil {
		return name
	}
	n := len(name)
	h[n] = ':'
	n += 1 + copy(h[n+1:], port)
	return h[:n]
}

// normalizePath rewrites an origin-form path in place as RFC 3986 section
// 6.2.2 normalises it, under pol, and returns it; reason is set when the
// path cannot be accepted.
func normalizePath(p []byte, pol PathPolicy) (out []byte, reason string) {
	p, reason = decodePath(p, pol.EncodedSlash)
	if reason != "" {
		return p, reason
	}
	return removeDotSegments(p, !pol.KeepSlashes)
}

// decodePath decodes the escapes of unreserved characters and upper-cases
// the hex digits of the others, in place.
func decodePath(p []byte, slash EncodedSlash) ([]byte, string) {
	w := 0
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch c {
		case '\\':
			// Some origins take a backslash for a slash; a rule that
			// matched the path would then be stepped around.
			return p, "backslash in path"
		case '%':
			if i+2 >= len(p) || !IsHex(p[i+1]) || !IsHex(p[i+2]) {
				return p, "invalid percent-encoding in path"
			}
			v := unhex(p[i+1])<<4 | unhex(p[i+2])
			i += 2
			switch {
			case unreserved[v]:
				p[w] = v
				w++
				continue
			case v == '/' && slash == SlashDecode:
				p[w] = '/'
				w++
				continue
			case v == '/' && slash == SlashReject:
				return p, "encoded slash in path"
			}
			p[w], p[w+1], p[w+2] = '%', upperHex[v>>4], upperHex[v&15]
			w += 3
			continue
		}
		p[w] = c
		w++
	}
	return p[:w], ""
}

const upperHex = "0123456789ABCDEF"

func unhex(c byte) byte {
	if c <= '9' {
		return c - '0'
	}
	return c | 0x20 - 'a' + 10
}

// removeDotSegments removes "." and ".." segments in place (RFC 3986
// section 5.2.4), and empty segments when merge is set. A ".." never
// climbs above the root. Segments that only look like dot-segments with a
// parameter ("..;x", which servlet containers take for "..") are refused.
func removeDotSegments(p []byte, merge bool) ([]byte, string) {
	out := 0
	for i := 0; i < len(p); {
		j := i + 1
		for j < len(p) && p[j] != '/' {
			j++
		}
		seg, last := p[i+1:j], j == len(p)
		switch {
		case string(seg) == ".":
		case string(seg) == "..":
			out = max(bytes.LastIndexByte(p[:out], '/'), 0)
		case bytes.HasPrefix(seg, []byte("..;")) || bytes.HasPrefix(seg, []byte(".;")):
			return p, "dot-segment with parameters in path"
		case len(seg) == 0 && merge && !last:
		default:
			out += copy(p[out:], p[i:j])
			i = j
			continue
		}
		if last {
			p[out] = '/'
			out++
		}
		i = j
	}
	if out == 0 {
		p[0] = '/'
		out = 1
	}
	return p[:out], ""
}

// ParseDecimal parses a non-empty string of ASCII digits that fits in an
// int64 (a Content-Length, RFC 9110 section 8.6); 18 digits always fit,
// longer is absurd.
func ParseDecimal(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
