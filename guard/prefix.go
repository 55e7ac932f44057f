package guard

import (
	"net/netip"

	"go4.org/netipx"
)

// PrefixSet is a set of address ranges (CIDR prefixes) compiled for lookup
// by binary search (a netipx.IPSet), so an allow or deny list of thousands
// of prefixes costs a few comparisons per request. IPv4 and IPv6 are kept
// apart as netip does ("::/0" holds no IPv4 address), except that an
// IPv4-mapped IPv6 address is looked up as the IPv4 address it carries. A
// nil PrefixSet is empty; a PrefixSet is read-only once made.
type PrefixSet struct{ ips *netipx.IPSet }

// NewPrefixSet compiles prefixes into a set, merging overlaps. Invalid
// prefixes are skipped.
func NewPrefixSet(prefixes ...netip.Prefix) *PrefixSet {
	var b netipx.IPSetBuilder
	for _, p := range prefixes {
		if p.IsValid() {
			b.AddPrefix(p.Masked())
		}
	}
	ips, _ := b.IPSet() // fails only for the invalid prefixes skipped above
	return &PrefixSet{ips}
}

// Contains reports whether ip is in the set. A zone ("fe80::1%eth0") is
// ignored.
func (s *PrefixSet) Contains(ip netip.Addr) bool {
	return s != nil && ip.IsValid() && s.ips.Contains(ip.Unmap().WithZone(""))
}
