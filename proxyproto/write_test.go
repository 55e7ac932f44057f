package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"
)

var appendTests = []struct {
	name             string
	src, dst         netip.AddrPort
	wantSrc, wantDst netip.AddrPort
	wantV1           string
}{
	{"IPv4", src4, dst4, src4, dst4, "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n"},
	{"IPv6", src6, dst6, src6, dst6, "PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n"},
	{"mixed families become IPv6", src4, dst6,
		netip.MustParseAddrPort("[::ffff:192.0.2.1]:12345"), dst6,
		"PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 12345 443\r\n"},
	{"zone is dropped", netip.MustParseAddrPort("[fe80::1%eth0]:1"), dst6,
		netip.MustParseAddrPort("[fe80::1]:1"), dst6,
		"PROXY TCP6 fe80::1 2001:db8::2 1 443\r\n"},
	{"unknown source", netip.AddrPort{}, dst4, netip.AddrPort{}, netip.AddrPort{}, "PROXY UNKNOWN\r\n"},
}

func TestAppendedHeadersReadBack(t *testing.T) {
	for _, tt := range appendTests {
		t.Run(tt.name, func(t *testing.T) {
			v1 := appendV1(nil, tt.src, tt.dst)
			if string(v1) != tt.wantV1 {
				t.Errorf("appendV1 = %q, want %q", v1, tt.wantV1)
			}
			for _, h := range [][]byte{v1, appendV2(nil, tt.src, tt.dst)} {
				src, dst, err := Read(bufio.NewReader(bytes.NewReader(h)))
				if err != nil || src != tt.wantSrc || dst != tt.wantDst {
					t.Errorf("Read(%q) = %v %v %v, want %v %v", h, src, dst, err, tt.wantSrc, tt.wantDst)
				}
			}
		})
	}
}

// appendV1 appends a v1 (text) header naming src and dst to b, as a load
// balancer in front of Outpost would send it. Both addresses are written as TCP6
// unless both are IPv4; an invalid src gives "PROXY UNKNOWN".
func appendV1(b []byte, src, dst netip.AddrPort) []byte {
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

// appendV2 appends a v2 (binary) header naming src and dst over TCP to b,
// with no TLVs. Both addresses are written as IPv6 unless both are IPv4; an
// invalid src gives a LOCAL header.
func appendV2(b []byte, src, dst netip.AddrPort) []byte {
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
