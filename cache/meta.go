package cache

import (
	"bytes"
	"encoding/binary"
	"errors"
	"iter"
	"time"

	"github.com/outpost-edge/outpost/httphead"
)

// Stored metadata is a fixed binary prefix followed by four raw sections:
// the response header block as HTTP/1.1 lines, ready to copy into a reply;
// the Surrogate-Key value; the Vary field names; the edge-targeted fields
// (kept apart from the client's headers, for revalidation). Decoding is
// slicing.
//
//	0  magic          1 kind        2  status uint16   4  flags uint32
//	8  response time (Unix ns)      16 initial age (ns)
//	24 freshness lifetime (ns)      32 stale-while-revalidate (ns)
//	40 stale-if-error (ns)          48 epoch (vary marker)
//	56 soft-purged at (Unix ns, vary marker)
//	64 header block length   68 tags length   72 vary length
//	76 edge fields length (uint32)
const metaPrefix = 80

const (
	// metaMagic identifies the layout (this prefix and the flag bits): a
	// change to either takes a new value, so that objects a disk store kept
	// from an older build decode as misses instead of being misread.
	metaMagic = 'P'

	kindObject    = 1 // a response
	kindVary      = 2 // a Vary marker: its variants live under secondary keys
	kindSegmented = 3 // a response stored in segments: this is its head (segment.go)
	kindSegment   = 4 // one segment of a segmented response
)

// Object flags.
const (
	flagNoStale      = 1 << iota // must-revalidate, proxy-revalidate or s-maxage: no stale by default
	flagMustCheck                // must-revalidate or proxy-revalidate: never stale, whatever else says
	flagAlwaysCheck              // no-cache: revalidate before every use
	flagImmutable                // immutable: no revalidation while fresh, even if asked
	flagHasValidator             // ETag or Last-Modified present
)

var errBadMeta = errors.New("cache: malformed stored metadata")

// meta is the decoded view of stored metadata; its slices point into the
// encoded bytes.
type meta struct {
	kind       byte
	status     int
	flags      uint32
	respTime   int64 // Unix ns
	initialAge time.Duration
	lifetime   time.Duration
	swr, sie   time.Duration
	epoch      uint64
	purgedAt   int64

	headers []byte
	tags    []byte
	vary    []byte
	edge    []byte
}

func (m *meta) has(f uint32) bool { return m.flags&f != 0 }

// decodeMeta slices b into m. It fails on anything it did not write.
func decodeMeta(b []byte, m *meta) error {
	if len(b) < metaPrefix || b[0] != metaMagic || b[1] < kindObject || b[1] > kindSegment {
		return errBadMeta
	}
	le := binary.LittleEndian
	hl, tl, vl, el := int(le.Uint32(b[64:])), int(le.Uint32(b[68:])), int(le.Uint32(b[72:])), int(le.Uint32(b[76:]))
	if hl < 0 || tl < 0 || vl < 0 || el < 0 || metaPrefix+hl+tl+vl+el != len(b) {
		return errBadMeta
	}
	*m = meta{
		kind:       b[1],
		status:     int(le.Uint16(b[2:])),
		flags:      le.Uint32(b[4:]),
		respTime:   int64(le.Uint64(b[8:])),
		initialAge: time.Duration(le.Uint64(b[16:])),
		lifetime:   time.Duration(le.Uint64(b[24:])),
		swr:        time.Duration(le.Uint64(b[32:])),
		sie:        time.Duration(le.Uint64(b[40:])),
		epoch:      le.Uint64(b[48:]),
		purgedAt:   int64(le.Uint64(b[56:])),
	}
	s := b[metaPrefix:]
	m.headers, s = s[:hl:hl], s[hl:]
	m.tags, s = s[:tl:tl], s[tl:]
	m.vary, s = s[:vl:vl], s[vl:]
	m.edge = s[:el:el]
	return nil
}

// encode appends m to dst; headers, tags and vary are copied in.
func (m *meta) encode(dst []byte) []byte {
	le := binary.LittleEndian
	dst = append(dst, metaMagic, m.kind)
	dst = le.AppendUint16(dst, uint16(m.status))
	dst = le.AppendUint32(dst, m.flags)
	for _, v := range [...]uint64{uint64(m.respTime), uint64(m.initialAge), uint64(m.lifetime),
		uint64(m.swr), uint64(m.sie), m.epoch, uint64(m.purgedAt)} {
		dst = le.AppendUint64(dst, v)
	}
	dst = le.AppendUint32(dst, uint32(len(m.headers)))
	dst = le.AppendUint32(dst, uint32(len(m.tags)))
	dst = le.AppendUint32(dst, uint32(len(m.vary)))
	dst = le.AppendUint32(dst, uint32(len(m.edge)))
	dst = append(dst, m.headers...)
	dst = append(dst, m.tags...)
	dst = append(dst, m.vary...)
	return append(dst, m.edge...)
}

// age returns the object's current age (RFC 9111 section 4.2.3).
func (m *meta) age(now time.Time) time.Duration {
	resident := time.Duration(now.UnixNano() - m.respTime)
	return m.initialAge + max(resident, 0)
}

// eachHeader calls fn for each "Name: value" line of a header block.
func eachHeader(block []byte, fn func(name, value []byte) bool) {
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line, block = block[:i], block[i+1:]
		} else {
			block = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			continue
		}
		if !fn(line[:i], httphead.TrimOWS(line[i+1:])) {
			return
		}
	}
}

// headerValue returns the first value of the named field in a header block.
func headerValue(block []byte, name string) []byte {
	var v []byte
	eachHeader(block, func(n, val []byte) bool {
		if httphead.EqualFold(n, name) {
			v = val
			return false
		}
		return true
	})
	return v
}

// copyHeaders adds every field of a header block to h.
func copyHeaders(h *httphead.Header, block []byte) {
	eachHeader(block, func(n, v []byte) bool {
		h.Add(n, v)
		return true
	})
}

// EachTag yields the surrogate keys of stored metadata without allocating;
// each slice is valid only while the metadata is.
func EachTag(stored []byte) iter.Seq[[]byte] {
	return func(yield func([]byte) bool) {
		var m meta
		if decodeMeta(stored, &m) != nil {
			return
		}
		tags := m.tags
		for len(tags) > 0 {
			i := 0
			for i < len(tags) && tags[i] != ' ' && tags[i] != '\t' {
				i++
			}
			if i > 0 && !yield(tags[:i:i]) {
				return
			}
			tags = tags[min(i+1, len(tags)):]
		}
	}
}
