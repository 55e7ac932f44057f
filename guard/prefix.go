package guard

import (
	"cmp"
	"net/netip"
	"slices"
)

// PrefixSet is a set of address ranges (CIDR prefixes) compiled for lookup
// by binary search, so an allow or deny list of thousands of prefixes costs
// a few comparisons per request. IPv4 and IPv6 are kept apart as netip
// does ("::/0" holds no IPv4 address), except that an IPv4-mapped IPv6
// address is looked up as the IPv4 address it carries. The zero PrefixSet
// is empty; it is read-only once made.
type PrefixSet struct {
	v4, v6 []addrRange // each sorted by lo, not overlapping
}

// addrRange is an inclusive range of addresses, as 128-bit numbers (IPv4 in
// its mapped form).
type addrRange struct{ lo, hi u128 }

type u128 struct{ hi, lo uint64 }

func (a u128) cmp(b u128) int {
	if c := cmp.Compare(a.hi, b.hi); c != 0 {
		return c
	}
	return cmp.Compare(a.lo, b.lo)
}

// next returns a+1, and false when it wrapped round.
func (a u128) next() (u128, bool) {
	a.lo++
	if a.lo == 0 {
		a.hi++
		return a, a.hi != 0
	}
	return a, true
}

// toU128 returns ip as a number, IPv4 in its IPv4-mapped IPv6 form.
func toU128(ip netip.Addr) u128 {
	b := ip.As16()
	return u128{beUint64(b[:8]), beUint64(b[8:])}
}

func beUint64(b []byte) uint64 {
	var v uint64
	for _, c := range b[:8] {
		v = v<<8 | uint64(c)
	}
	return v
}

// NewPrefixSet compiles prefixes into a set, merging overlaps. Invalid
// prefixes are skipped.
func NewPrefixSet(prefixes ...netip.Prefix) *PrefixSet {
	var s PrefixSet
	for _, p := range prefixes {
		if !p.IsValid() {
			continue
		}
		p = p.Masked()
		lo := toU128(p.Addr())
		if p.Addr().Is4() {
			s.v4 = append(s.v4, addrRange{lo, lastOf(lo, p.Bits()+96)})
		} else {
			s.v6 = append(s.v6, addrRange{lo, lastOf(lo, p.Bits())})
		}
	}
	s.v4, s.v6 = merge(s.v4), merge(s.v6)
	return &s
}

// merge sorts rs and joins the ranges that overlap or touch.
func merge(rs []addrRange) []addrRange {
	slices.SortFunc(rs, func(a, b addrRange) int { return a.lo.cmp(b.lo) })
	merged := rs[:0]
	for _, r := range rs {
		if n := len(merged); n > 0 {
			last := &merged[n-1]
			after, ok := last.hi.next()
			if !ok || r.lo.cmp(after) <= 0 { // overlaps or touches
				if r.hi.cmp(last.hi) > 0 {
					last.hi = r.hi
				}
				continue
			}
		}
		merged = append(merged, r)
	}
	return merged
}

// lastOf returns the last address of the /bits prefix starting at lo.
func lastOf(lo u128, bits int) u128 {
	switch {
	case bits >= 128:
		return lo
	case bits >= 64:
		return u128{lo.hi, lo.lo | (1<<(128-bits) - 1)}
	default:
		return u128{lo.hi | (1<<(64-bits) - 1), ^uint64(0)}
	}
}

// Contains reports whether ip is in the set.
func (s *PrefixSet) Contains(ip netip.Addr) bool {
	if s == nil || !ip.IsValid() {
		return false
	}
	ip = ip.Unmap()
	ranges := s.v6
	if ip.Is4() {
		ranges = s.v4
	}
	x := toU128(ip)
	// first range starting after x; the one before it is the candidate
	i, _ := slices.BinarySearchFunc(ranges, x, func(r addrRange, x u128) int {
		if r.lo.cmp(x) <= 0 {
			return -1
		}
		return 1
	})
	return i > 0 && x.cmp(ranges[i-1].hi) <= 0
}

// Len returns the number of disjoint ranges in the set.
func (s *PrefixSet) Len() int { return len(s.v4) + len(s.v6) }
