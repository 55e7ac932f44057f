package limit

import "net/netip"

// IPKey appends the key for one client address: 4 bytes for IPv4 (and
// IPv4-mapped IPv6), 16 for IPv6.
func IPKey(dst []byte, ip netip.Addr) []byte {
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		return append(dst, a[:]...)
	}
	a := ip.As16()
	return append(dst, a[:]...)
}

// ClientKey appends the key that stands for one client: the whole address
// for IPv4, the /64 prefix for IPv6, since one IPv6 host usually holds a
// whole /64 and could otherwise dodge a per-address limit by changing its
// interface identifier.
func ClientKey(dst []byte, ip netip.Addr) []byte {
	ip = ip.Unmap()
	if ip.Is4() {
		return IPKey(dst, ip)
	}
	a := ip.As16()
	return append(dst, a[:8]...)
}
