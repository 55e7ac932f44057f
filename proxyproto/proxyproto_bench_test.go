package proxyproto

import (
	"bufio"
	"strings"
	"testing"
)

func BenchmarkRead(b *testing.B) {
	for _, bm := range []struct{ name, in string }{
		{"v1 TCP4", "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n"},
		{"v1 TCP6", "PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n"},
		{"v2 TCP4", v2(0x21, 0x11, ip4Addrs())},
		{"v2 TCP6 with TLVs", v2(0x21, 0x21, ip6Addrs(), tlv(0x02, "example.org"))},
	} {
		b.Run(bm.name, func(b *testing.B) {
			sr := strings.NewReader(bm.in)
			br := bufio.NewReader(sr)
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.in)))
			for b.Loop() {
				sr.Reset(bm.in)
				br.Reset(sr)
				if _, _, err := Read(br); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
