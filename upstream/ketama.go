package upstream

import (
	"cmp"
	"crypto/md5"
	"encoding/binary"
	"slices"
	"strconv"
)

// Ketama is consistent hashing on a libketama-style ring: adding or
// removing one of N servers moves only about 1/N of the keys, which keeps
// an origin-side cache warm. Each server gets 40·weight MD5 digests of
// "addr-0", "addr-1", ..., each giving four little-endian 32-bit points:
// 160 points per weight unit. A key hashes with HashKey to the first point
// at or after it, wrapping around; retries walk on clockwise to the next
// server.
//
// With equal weights the ring is libketama's (and twemproxy's). With unequal
// weights libketama gives floor(40·N·weight/Σweight) digests, computed in
// single precision, so a server's points depend on the others and on
// rounding (with 50 equal servers each gets 39 digests); fixed points per
// weight unit keep every move on a server change going to or from the
// changed server. The ring is not nginx's "hash ... consistent", which
// places CRC32 points.
type Ketama struct{}

var _ Policy = Ketama{}

// HashKey hashes a request key (URL, header or cookie value, client IP: the
// caller picks the bytes) as libketama does: the first four bytes of its
// MD5 digest, little-endian. It does not allocate.
func HashKey(key []byte) uint64 {
	d := md5.Sum(key)
	return uint64(binary.LittleEndian.Uint32(d[:4]))
}

// Build implements Policy.
func (Ketama) Build(servers []*Server) Selector {
	var points []ringPoint
	var buf []byte
	for i, s := range servers {
		for j := range 40 * s.weight() {
			buf = strconv.AppendInt(append(append(buf[:0], s.Addr...), '-'), int64(j), 10)
			d := md5.Sum(buf)
			for h := range 4 {
				points = append(points, ringPoint{binary.LittleEndian.Uint32(d[h*4:]), int32(i)})
			}
		}
	}
	slices.SortFunc(points, func(a, b ringPoint) int {
		return cmp.Or(cmp.Compare(a.hash, b.hash), cmp.Compare(a.server, b.server))
	})
	r := &ring{hashes: make([]uint32, len(points)), owners: make([]int32, len(points))}
	for i, p := range points {
		r.hashes[i], r.owners[i] = p.hash, p.server
	}
	for b := range 1 << ringIndexBits {
		r.index[b] = int32(sortSearch(r.hashes, uint32(b)<<(32-ringIndexBits)))
	}
	r.index[1<<ringIndexBits] = int32(len(r.hashes))
	return r
}

func sortSearch(hashes []uint32, h uint32) int {
	i, _ := slices.BinarySearch(hashes, h)
	return i
}

type ringPoint struct {
	hash   uint32
	server int32
}

// ring is the sorted points, split into two arrays for a cache-friendly
// search, plus an index by the top bits of the hash: index[b] is the first
// point whose top bits are b or more, so a lookup searches only the few
// points of one bucket (a ring of 100 servers has 16,000 points, 128 KB,
// which a plain binary search walks with a cache miss per step).
type ring struct {
	hashes []uint32
	owners []int32
	index  [1<<ringIndexBits + 1]int32
}

const ringIndexBits = 12

// maxRingWalk bounds the clockwise walk past disallowed servers' points;
// beyond it Select falls back to a scan of the servers, which is as
// deterministic for a key and cheaper when most servers are down.
const maxRingWalk = 256

func (r *ring) Select(c *Candidates) int {
	n := len(r.hashes)
	if n == 0 {
		return c.firstAllowedFrom(0)
	}
	h := uint32(c.Key())
	lo, hi := r.index[h>>(32-ringIndexBits)], r.index[h>>(32-ringIndexBits)+1]
	start := int(lo) + sortSearch(r.hashes[lo:hi], h)
	for k := range min(n, maxRingWalk) {
		if i := int(r.owners[(start+k)%n]); c.Allowed(i) {
			return i
		}
	}
	return c.firstAllowedFrom(int(r.owners[start%n]))
}
