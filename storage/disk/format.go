package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
)

// Object file layout (integers little-endian):
//
//	offset  size     field
//	0       8        magic "OUTPOST" + format version 1
//	8       8        body length
//	16      4        body CRC-32C
//	20      4        key length
//	24      4        metadata length
//	28      4        metadata area size (>= metadata length)
//	32      4        reserved, zero
//	36      4        header CRC-32C over bytes 0..36, the key and the metadata
//	40      keyLen   key
//	...     metaCap  metadata, then unused slack (so UpdateMeta can rewrite in place)
//	bodyOff bodyLen  body; bodyOff = 40 + keyLen + metaCap
//
// A file is valid when its header CRC matches and its length is exactly
// bodyOff + bodyLen.
const (
	magic    = "OUTPOST\x01"
	fixedLen = 40

	// Bounds on what a header may claim, so a corrupt one cannot make a
	// reader allocate gigabytes.
	maxKeyLen  = 64 << 10
	maxMetaLen = 1 << 20

	// The metadata area gets a quarter of slack plus metaSlack bytes and is
	// padded so that the body starts on a headAlign boundary.
	metaSlack = 64
	headAlign = 512
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// errCorrupt marks a file that is not a valid object file; the store deletes it.
var errCorrupt = errors.New("disk: corrupt object file")

// header is the decoded head of an object file. key and meta may alias the
// buffer it was parsed from.
type header struct {
	key     []byte
	meta    []byte
	metaCap int
	bodyLen int64
	bodyCRC uint32
}

// newHeader returns the header of a fresh object, with room for metadata to
// grow before UpdateMeta has to copy the body.
func newHeader(key string, meta []byte) header {
	end := fixedLen + len(key) + len(meta) + len(meta)/4 + metaSlack
	end = (end + headAlign - 1) / headAlign * headAlign
	return header{key: []byte(key), meta: meta, metaCap: end - fixedLen - len(key)}
}

func (h *header) bodyOff() int64 { return int64(fixedLen + len(h.key) + h.metaCap) }

// fileSize is the length of a complete object file with this header.
func (h *header) fileSize() int64 { return h.bodyOff() + h.bodyLen }

// appendTo appends the fixed part, key and metadata (not the slack) to b.
func (h *header) appendTo(b []byte) []byte {
	start := len(b)
	b = append(b, magic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(h.bodyLen))
	b = binary.LittleEndian.AppendUint32(b, h.bodyCRC)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.key)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(h.meta)))
	b = binary.LittleEndian.AppendUint32(b, uint32(h.metaCap))
	b = binary.LittleEndian.AppendUint32(b, 0)
	crc := crc32.Update(0, castagnoli, b[start:start+36])
	crc = crc32.Update(crc, castagnoli, h.key)
	crc = crc32.Update(crc, castagnoli, h.meta)
	b = binary.LittleEndian.AppendUint32(b, crc)
	b = append(b, h.key...)
	return append(b, h.meta...)
}

// parseHeader decodes the header at the start of b. When b is too short to
// hold the key and metadata it returns need > len(b) and no error: the
// caller reads need bytes and calls again.
func parseHeader(b []byte) (h header, need int, err error) {
	if len(b) < fixedLen {
		return h, fixedLen, nil
	}
	if string(b[:8]) != magic {
		return h, 0, fmt.Errorf("%w: bad magic %q", errCorrupt, b[:8])
	}
	bodyLen := binary.LittleEndian.Uint64(b[8:])
	keyLen := binary.LittleEndian.Uint32(b[20:])
	metaLen := binary.LittleEndian.Uint32(b[24:])
	metaCap := binary.LittleEndian.Uint32(b[28:])
	switch {
	case bodyLen > 1<<62:
		return h, 0, fmt.Errorf("%w: body length %d", errCorrupt, bodyLen)
	case keyLen > maxKeyLen:
		return h, 0, fmt.Errorf("%w: key length %d", errCorrupt, keyLen)
	case metaCap > 2*maxMetaLen || metaLen > metaCap:
		return h, 0, fmt.Errorf("%w: metadata length %d in %d", errCorrupt, metaLen, metaCap)
	case binary.LittleEndian.Uint32(b[32:]) != 0:
		return h, 0, fmt.Errorf("%w: reserved field set", errCorrupt)
	}
	need = fixedLen + int(keyLen) + int(metaLen)
	if len(b) < need {
		return h, need, nil
	}
	crc := crc32.Update(0, castagnoli, b[:36])
	crc = crc32.Update(crc, castagnoli, b[fixedLen:need])
	if crc != binary.LittleEndian.Uint32(b[36:]) {
		return h, 0, fmt.Errorf("%w: header checksum mismatch", errCorrupt)
	}
	return header{
		key:     b[fixedLen : fixedLen+keyLen],
		meta:    b[fixedLen+keyLen : need],
		metaCap: int(metaCap),
		bodyLen: int64(bodyLen),
		bodyCRC: binary.LittleEndian.Uint32(b[16:]),
	}, need, nil
}

// sameKey reports whether the header belongs to key (and not to another key
// whose hash collides).
func (h *header) sameKey(key string) bool { return string(h.key) == key }
