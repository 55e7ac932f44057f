// Package httphead holds the request and response heads shared by every
// protocol and every phase of Outpost: an ordered, case-preserving header
// list stored in one reusable byte buffer, so that a head that is reset and
// refilled for each request allocates nothing in steady state.
//
// A proxy should not change headers it does not read: fields keep their
// original case and order, and are written out again as they came in.
// net/http's Header (a map of canonicalised keys) loses both and allocates per
// field, which is why the hot path uses this type instead.
package httphead

import "bytes"

// span is a half-open byte range of a Header's buffer.
type span struct{ start, end int32 }

type field struct{ name, value span }

// Header is an ordered list of header fields. The zero value is empty and
// ready to use. Values returned by Peek and Field stay valid until the Header
// is next modified or reset.
type Header struct {
	buf    []byte
	fields []field
}

// Reset empties the header, keeping its storage for reuse.
func (h *Header) Reset() {
	h.buf = h.buf[:0]
	h.fields = h.fields[:0]
}

// Len returns the number of fields.
func (h *Header) Len() int { return len(h.fields) }

// Field returns the name and value of field i, in arrival order.
func (h *Header) Field(i int) (name, value []byte) {
	f := h.fields[i]
	return h.buf[f.name.start:f.name.end], h.buf[f.value.start:f.value.end]
}

func (h *Header) push(b []byte) span {
	s := int32(len(h.buf))
	h.buf = append(h.buf, b...)
	return span{s, int32(len(h.buf))}
}

func (h *Header) pushString(b string) span {
	s := int32(len(h.buf))
	h.buf = append(h.buf, b...)
	return span{s, int32(len(h.buf))}
}

// Add appends a field, copying name and value.
func (h *Header) Add(name, value []byte) {
	h.fields = append(h.fields, field{h.push(name), h.push(value)})
}

// AddString appends a field, copying name and value.
func (h *Header) AddString(name, value string) {
	h.fields = append(h.fields, field{h.pushString(name), h.pushString(value)})
}

// Set replaces every field named name with one field of the given value.
func (h *Header) Set(name, value string) {
	h.Del(name)
	h.AddString(name, value)
}

// index returns the position of the first field named name at or after
// from, compared case-insensitively, or -1.
func (h *Header) index(name string, from int) int {
	for i := from; i < len(h.fields); i++ {
		f := h.fields[i]
		if EqualFold(h.buf[f.name.start:f.name.end], name) {
			return i
		}
	}
	return -1
}

// Peek returns the value of the first field named name (case-insensitive),
// or nil when there is none. It does not allocate.
func (h *Header) Peek(name string) []byte {
	i := h.index(name, 0)
	if i < 0 {
		return nil
	}
	v := h.fields[i].value
	return h.buf[v.start:v.end:v.end]
}

// Get is Peek returning a string ("" when absent).
func (h *Header) Get(name string) string { return string(h.Peek(name)) }

// Has reports whether a field named name is present.
func (h *Header) Has(name string) bool { return h.index(name, 0) >= 0 }

// Count returns how many fields are named name.
func (h *Header) Count(name string) int {
	n := 0
	for i := h.index(name, 0); i >= 0; i = h.index(name, i+1) {
		n++
	}
	return n
}

// Values calls fn with the value of every field named name, in order, until
// fn returns false.
func (h *Header) Values(name string, fn func(value []byte) bool) {
	for i := h.index(name, 0); i >= 0; i = h.index(name, i+1) {
		v := h.fields[i].value
		if !fn(h.buf[v.start:v.end:v.end]) {
			return
		}
	}
}

// Del removes every field named name and returns how many it removed.
func (h *Header) Del(name string) int {
	return h.DelFunc(func(n, _ []byte) bool { return EqualFold(n, name) })
}

// DelFunc removes every field for which drop returns true, keeping the order
// of the rest, and returns how many it removed.
func (h *Header) DelFunc(drop func(name, value []byte) bool) int {
	kept := h.fields[:0]
	for _, f := range h.fields {
		if !drop(h.buf[f.name.start:f.name.end], h.buf[f.value.start:f.value.end]) {
			kept = append(kept, f)
		}
	}
	n := len(h.fields) - len(kept)
	h.fields = kept
	return n
}

// CopyFrom makes h a copy of o, reusing h's storage.
func (h *Header) CopyFrom(o *Header) {
	h.buf = append(h.buf[:0], o.buf...)
	h.fields = append(h.fields[:0], o.fields...)
}

// Clone returns an independent copy.
func (h *Header) Clone() *Header {
	c := &Header{}
	c.CopyFrom(h)
	return c
}

// Size returns the bytes the fields would take on the wire as HTTP/1.1 lines.
func (h *Header) Size() int {
	n := 0
	for _, f := range h.fields {
		n += int(f.name.end-f.name.start) + int(f.value.end-f.value.start) + 4
	}
	return n
}

// AppendTo appends the fields as HTTP/1.1 header lines ("Name: value\r\n").
func (h *Header) AppendTo(dst []byte) []byte {
	for _, f := range h.fields {
		dst = append(dst, h.buf[f.name.start:f.name.end]...)
		dst = append(dst, ':', ' ')
		dst = append(dst, h.buf[f.value.start:f.value.end]...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// HasToken reports whether any field named name holds token in its
// comma-separated list (case-insensitive), as Connection: close does.
func (h *Header) HasToken(name, token string) bool {
	found := false
	h.Values(name, func(v []byte) bool {
		found = ListHas(v, token)
		return !found
	})
	return found
}

// ListHas reports whether the comma-separated list v holds token,
// compared case-insensitively, ignoring optional whitespace.
func ListHas(v []byte, token string) bool {
	for len(v) > 0 {
		var item []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			item, v = v[:i], v[i+1:]
		} else {
			item, v = v, nil
		}
		if EqualFold(TrimOWS(item), token) {
			return true
		}
	}
	return false
}

// TrimOWS trims spaces and horizontal tabs at both ends.
func TrimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// EqualFold reports whether b and s are equal under ASCII case folding. It
// does not allocate.
func EqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := 0; i < len(b); i++ {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if x|0x20 != y|0x20 || (x|0x20) < 'a' || (x|0x20) > 'z' {
			return false
		}
	}
	return true
}

// CookieValue returns the value of the cookie named name in a Cookie
// field value ("a=1; b=2"), or nil. It does not allocate.
func CookieValue(h []byte, name string) []byte {
	for len(h) > 0 {
		var pair []byte
		if i := bytes.IndexByte(h, ';'); i >= 0 {
			pair, h = h[:i], h[i+1:]
		} else {
			pair, h = h, nil
		}
		pair = TrimOWS(pair)
		if k, v, ok := bytes.Cut(pair, []byte("=")); ok && string(k) == name {
			return v
		}
	}
	return nil
}

// AddMap appends the fields of a net/http style header map (http.Header,
// a response's Trailer), for the protocols served through net/http's types.
func (h *Header) AddMap(m map[string][]string) {
	for name, values := range m {
		for _, v := range values {
			h.AddString(name, v)
		}
	}
}
