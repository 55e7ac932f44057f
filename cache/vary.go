package cache

import (
	"bytes"
	"encoding/binary"
	"strings"

	"github.com/outpost-edge/outpost/httphead"
)

// Vary normalisation (RFC 9111 section 4.1): a cache may normalise the
// request fields a response varies on, "by adding or removing whitespace
// where allowed in the field's syntax", reordering list members "when
// order is not significant" and folding case "where values are defined to
// be case-insensitive", so that requests that mean the same select the
// same stored variant. The secondary key holds each varied field in this
// form:
//
//   - Accept-Encoding: the coding the cache asks origins for (see
//     acceptEncoding); with KeepAcceptEncoding, the list below, its
//     members also sorted, since codings of one weight have no order
//     (RFC 9110 section 12.5.3).
//   - Accept, Accept-Charset, Accept-Language: every line joined into one
//     list, each member without the whitespace around it and its
//     parameters, in lower case (media types, charsets, codings and
//     language tags are case-insensitive; a media type parameter keeps
//     the case of its value), its weight written the shortest way ("q=1"
//     dropped, "q=0.50" as "q=0.5"), the members in decreasing weight,
//     those of equal weight left in the client's order (RFC 9110 section
//     12.4.2, RFC 4647 section 2.3).
//   - Cookie: every line joined with "; " (as HTTP/2 splits it, RFC 9113
//     section 8.2.3), each pair trimmed; the order is kept.
//   - any other field: each line without the whitespace at its ends
//     (not part of a field value, RFC 9110 section 5.5), the lines joined
//     with commas.

// appendVaried appends "\x00name=value" for one field a response varies
// on, value normalised as above, or "\x00name" when the request lacks it.
func appendVaried(dst []byte, h *httphead.Header, name []byte, normAE bool) []byte {
	switch {
	case httphead.EqualFold(name, "Accept-Encoding") && normAE:
		return append(append(dst, "\x00accept-encoding="...), acceptEncoding(h)...)
	case httphead.EqualFold(name, "Accept-Encoding"):
		return appendList(dst, h, name, true)
	case httphead.EqualFold(name, "Accept"), httphead.EqualFold(name, "Accept-Charset"),
		httphead.EqualFold(name, "Accept-Language"):
		return appendList(dst, h, name, false)
	case httphead.EqualFold(name, "Cookie"):
		return appendCookie(dst, h)
	}
	return appendField(dst, h, b2s(name))
}

// maxSorted bounds the members of a list that are reordered; a longer
// list keeps its order (normalised member by member).
const maxSorted = 32

// member is a normalised list member written in the key at [start, end).
type member struct {
	start, end int
	q          int // weight in thousandths
}

// appendList appends a weighted list field in its normal form: sortAll
// sorts every member (for fields whose order means nothing), otherwise
// members are ordered by decreasing weight only.
func appendList(dst []byte, h *httphead.Header, name []byte, sortAll bool) []byte {
	dst = append(append(dst, 0), name...)
	if !h.Has(b2s(name)) {
		return dst
	}
	dst = append(dst, '=')
	base := len(dst)
	var ms [maxSorted]member
	n := 0
	h.Values(b2s(name), func(v []byte) bool {
		forEachMember(v, ',', func(item []byte) {
			if len(dst) > base {
				dst = append(dst, ',')
			}
			start := len(dst)
			var q int
			dst, q = appendMember(dst, item)
			if n < len(ms) {
				ms[n] = member{start, len(dst), q}
			}
			n++
		})
		return true
	})
	if n < 2 || n > len(ms) {
		return dst
	}
	moved := false
	for i := 1; i < n; i++ { // insertion sort: stable, and no allocation
		for k := i; k > 0 && memberLess(dst, ms[k], ms[k-1], sortAll); k-- {
			ms[k], ms[k-1] = ms[k-1], ms[k]
			moved = true
		}
	}
	if !moved {
		return dst
	}
	mark := len(dst)
	for i, m := range ms[:n] {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, dst[m.start:m.end]...)
	}
	k := copy(dst[base:], dst[mark:])
	return dst[:base+k]
}

func memberLess(key []byte, a, b member, sortAll bool) bool {
	if a.q != b.q {
		return a.q > b.q
	}
	return sortAll && bytes.Compare(key[a.start:a.end], key[b.start:b.end]) < 0
}

// appendMember appends one list member ("gzip ; Q=0.50") in normal form
// ("gzip;q=0.5") and returns its weight.
func appendMember(dst, item []byte) ([]byte, int) {
	q, first := 1000, true
	forEachMember(item, ';', func(part []byte) {
		if first {
			dst, first = appendLower(dst, part), false
			return
		}
		pname, pval, _ := bytes.Cut(part, []byte("="))
		pname, pval = httphead.TrimOWS(pname), httphead.TrimOWS(pval)
		if httphead.EqualFold(pname, "q") {
			if w, ok := parseWeight(pval); ok {
				q = w
				if w < 1000 {
					dst = appendWeight(append(dst, ";q="...), w)
				}
				return
			}
		}
		dst = appendLower(append(dst, ';'), pname)
		if len(pval) > 0 {
			dst = append(append(dst, '='), pval...)
		}
	})
	return dst, q
}

// parseWeight reads a qvalue (RFC 9110 section 12.4.2) in thousandths.
func parseWeight(b []byte) (int, bool) {
	if len(b) == 0 || len(b) > 5 || (b[0] != '0' && b[0] != '1') {
		return 0, false
	}
	w := int(b[0]-'0') * 1000
	if len(b) == 1 {
		return w, true
	}
	if b[1] != '.' {
		return 0, false
	}
	scale := 100
	for _, c := range b[2:] {
		if c < '0' || c > '9' {
			return 0, false
		}
		w += int(c-'0') * scale
		scale /= 10
	}
	return w, w <= 1000
}

// appendWeight appends a weight below 1000 thousandths the shortest way.
func appendWeight(dst []byte, w int) []byte {
	if w == 0 {
		return append(dst, '0')
	}
	dst = append(dst, '0', '.')
	for scale := 100; w > 0; scale /= 10 {
		dst = append(dst, byte('0'+w/scale))
		w %= scale
	}
	return dst
}

func appendLower(dst, b []byte) []byte {
	for _, c := range b {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// appendCookie appends the request's cookie pairs, trimmed, joined with
// "; " whatever lines they came in.
func appendCookie(dst []byte, h *httphead.Header) []byte {
	dst = append(dst, "\x00cookie"...)
	if !h.Has("Cookie") {
		return dst
	}
	dst = append(dst, '=')
	base := len(dst)
	h.Values("Cookie", func(v []byte) bool {
		forEachMember(v, ';', func(pair []byte) {
			if len(dst) > base {
				dst = append(dst, "; "...)
			}
			dst = append(dst, pair...)
		})
		return true
	})
	return dst
}

// forEachMember calls fn for each non-empty element of a list separated by
// sep, trimmed of whitespace; a separator inside a quoted string (RFC 9110
// section 5.6.4) does not split.
func forEachMember(list []byte, sep byte, fn func([]byte)) {
	start, quoted := 0, false
	for i := 0; i <= len(list); i++ {
		if i < len(list) {
			switch c := list[i]; {
			case quoted && c == '\\':
				if i+1 < len(list) {
					i++ // the escaped byte, whatever it is
				}
				continue
			case c == '"':
				quoted = !quoted
				continue
			case c != sep || quoted:
				continue
			}
		}
		if item := httphead.TrimOWS(list[start:min(i, len(list))]); len(item) > 0 {
			fn(item)
		}
		start = i + 1
	}
}

// variantDetail shows the normalised request fields of a variant key, for
// the trace: "Accept-Encoding=br Accept-Language=en-gb,en;q=0.8".
func variantDetail(objKey, key string) string {
	fields := objKey[len(key)+len(variantSep)+binary.Size(uint64(0)):]
	return strings.TrimPrefix(strings.ReplaceAll(fields, "\x00", " "), " ")
}
