package proxyproto

import (
	"encoding/binary"
	"net/netip"
	"strconv"
)

// AppendV1 appends a v1 (text) header naming src and dst to b, for sending
// the client's address to an upstream. Both addresses are written as TCP6
// unless both are IPv4; an invalid src gives "PROXY UNKNOWN".
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	if !src.IsValid() || !dst.IsValid() {
		return append(b, "PROXY UNKNOWN\r\n"...)
	}
	sip, dip := src.Addr(), dst.Addr()
	if sip.Is4() && dip.Is4() {
		b = append(b, "PROXY TCP4 "...)
	} else {
		b = append(b, "PROXY TCP6 "...)
		sip, dip = as6(sip), as6(dip)
	}
	b = sip.AppendTo(b)
	b = append(b, ' ')
	b = dip.AppendTo(b)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(src.Port()), 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, uint64(dst.Port()), 10)
	return append(b, "\r\n"...)
}

// AppendV2 appends a v2 (binary) header naming src and dst over TCP to b,
// with no TLVs. Both addresses are written as IPv6 unless both are IPv4; an
// invalid src gives a LOCAL header.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, v2Sig[:]...)
	if !src.IsValid() || !dst.IsValid() {
		return append(b, 2<<4|cmdLocal, famUnspec<<4|protoUnspec, 0, 0)
	}
	sip, dip := src.Addr(), dst.Addr()
	if sip.Is4() && dip.Is4() {
		b = append(b, 2<<4|cmdProxy, famInet<<4|protoStream, 0, 12)
		s4, d4 := sip.As4(), dip.As4()
		b = append(b, s4[:]...)
		b = append(b, d4[:]...)
	} else {
		b = append(b, 2<<4|cmdProxy, famInet6<<4|protoStream, 0, 36)
		s16, d16 := as6(sip).As16(), as6(dip).As16()
		b = append(b, s16[:]...)
		b = append(b, d16[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}

// as6 returns ip in its 16-byte form, without a zone (the header has none).
func as6(ip netip.Addr) netip.Addr {
	return netip.AddrFrom16(ip.As16())
}
