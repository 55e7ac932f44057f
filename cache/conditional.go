package cache

import (
	"bytes"

	"github.com/outpost-edge/outpost/httphead"
)

// notModified evaluates a client's If-None-Match, or If-Modified-Since when
// there is no If-None-Match, against stored headers (RFC 9110 section 13.2.2).
func notModified(req *httphead.Request, stored []byte) bool {
	if !req.Header.Has("If-None-Match") {
		ims := req.Header.Peek("If-Modified-Since")
		if ims == nil {
			return false
		}
		since, ok := parseDate(ims)
		lm, ok2 := parseDate(headerValue(stored, "Last-Modified"))
		return ok && ok2 && !lm.After(since)
	}
	etag := headerValue(stored, "ETag")
	if etag == nil {
		return false
	}
	match := false
	req.Header.Values("If-None-Match", func(v []byte) bool {
		match = etagListHas(v, etag, false)
		return !match
	})
	return match
}

// preconditionFailed evaluates a client's If-Match, or If-Unmodified-Since
// when there is no If-Match, against stored headers (RFC 9110 sections
// 13.1.1, 13.1.4 and the order of 13.2.2): true means 412.
func preconditionFailed(req *httphead.Request, stored []byte) bool {
	if req.Header.Has("If-Match") {
		etag := headerValue(stored, "ETag")
		match := false
		req.Header.Values("If-Match", func(v []byte) bool {
			match = etag != nil && etagListHas(v, etag, true) || string(httphead.TrimOWS(v)) == "*"
			return !match
		})
		return !match
	}
	ius := req.Header.Peek("If-Unmodified-Since")
	if ius == nil {
		return false
	}
	since, ok := parseDate(ius)
	lm, ok2 := parseDate(headerValue(stored, "Last-Modified"))
	return ok && (!ok2 || lm.After(since))
}

// etagListHas reports whether a comma-separated entity-tag list (or "*")
// matches etag, with weak comparison unless strong is set.
func etagListHas(list, etag []byte, strong bool) bool {
	if string(httphead.TrimOWS(list)) == "*" {
		return true
	}
	match := false
	forEachToken(list, func(t []byte) {
		match = match || etagEqual(t, etag, strong)
	})
	return match
}

func etagEqual(a, b []byte, strong bool) bool {
	aw, bw := bytes.HasPrefix(a, []byte("W/")), bytes.HasPrefix(b, []byte("W/"))
	if strong && (aw || bw) {
		return false
	}
	if aw {
		a = a[2:]
	}
	if bw {
		b = b[2:]
	}
	return bytes.Equal(a, b)
}

// ifRangeHolds reports whether a Range request may be answered partially:
// there is no If-Range, or it matches the stored strong ETag or exact
// Last-Modified date (RFC 9110 section 13.1.5).
func ifRangeHolds(req *httphead.Request, stored []byte) bool {
	v := httphead.TrimOWS(req.Header.Peek("If-Range"))
	if v == nil {
		return true
	}
	if len(v) > 0 && (v[0] == '"' || bytes.HasPrefix(v, []byte("W/"))) {
		etag := headerValue(stored, "ETag")
		return etag != nil && etagEqual(v, etag, true)
	}
	d, ok := parseDate(v)
	lm, ok2 := parseDate(headerValue(stored, "Last-Modified"))
	return ok && ok2 && d.Equal(lm)
}

// parseRange parses a single byte range against a body of size bytes. ok
// is false when the header should be answered otherwise (malformed, another
// unit: ignored; several ranges: see parseRanges); start is -1 when the
// range is unsatisfiable (416). end is inclusive.
func parseRange(v []byte, size int64) (start, end int64, ok bool) {
	if bytes.IndexByte(v, ',') >= 0 {
		return 0, 0, false
	}
	var r byteRange
	sat := false
	if !eachSpec(v, func(first, last int64, suffix bool) { r, sat = specRange(first, last, suffix, size) }) {
		return 0, 0, false
	}
	if !sat {
		return -1, 0, true
	}
	return r.start, r.end - 1, true
}

// digits parses a non-empty run of decimal digits, saturating well below
// overflow.
func digits(b []byte) (int64, bool) {
	if len(b) == 0 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n < 1<<50 {
			n = n*10 + int64(c-'0')
		}
	}
	return n, true
}
