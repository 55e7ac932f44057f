package proxyproto

import (
	"bufio"
	"bytes"
	"net/netip"
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
			v1 := AppendV1(nil, tt.src, tt.dst)
			if string(v1) != tt.wantV1 {
				t.Errorf("AppendV1 = %q, want %q", v1, tt.wantV1)
			}
			for _, h := range [][]byte{v1, AppendV2(nil, tt.src, tt.dst)} {
				src, dst, err := Read(bufio.NewReader(bytes.NewReader(h)))
				if err != nil || src != tt.wantSrc || dst != tt.wantDst {
					t.Errorf("Read(%q) = %v %v %v, want %v %v", h, src, dst, err, tt.wantSrc, tt.wantDst)
				}
			}
		})
	}
}

func BenchmarkAppendV2(b *testing.B) {
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendV2(buf[:0], src6, dst6)
	}
}
