package proxyproto

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

// v2 builds a v2 header: verCmd, famProto, then body as the payload.
func v2(verCmd, famProto byte, body ...[]byte) string {
	payload := bytes.Join(body, nil)
	h := append(v2Sig[:], verCmd, famProto, 0, 0)
	binary.BigEndian.PutUint16(h[14:], uint16(len(payload)))
	return string(append(h, payload...))
}

// v2Len builds a v2 header whose length field is given explicitly.
func v2Len(verCmd, famProto byte, length uint16, payload []byte) string {
	h := append(v2Sig[:], verCmd, famProto, 0, 0)
	binary.BigEndian.PutUint16(h[14:], length)
	return string(append(h, payload...))
}

func ip4Addrs() []byte {
	return []byte{192, 0, 2, 1, 198, 51, 100, 7, 0x30, 0x39, 0x01, 0xbb} // 12345 -> 443
}

func ip6Addrs() []byte {
	b := make([]byte, 36)
	copy(b, netip.MustParseAddr("2001:db8::1").AsSlice())
	copy(b[16:], netip.MustParseAddr("2001:db8::2").AsSlice())
	binary.BigEndian.PutUint16(b[32:], 12345)
	binary.BigEndian.PutUint16(b[34:], 443)
	return b
}

func tlv(typ byte, val string) []byte {
	return append([]byte{typ, byte(len(val) >> 8), byte(len(val))}, val...)
}

var (
	src4 = netip.MustParseAddrPort("192.0.2.1:12345")
	dst4 = netip.MustParseAddrPort("198.51.100.7:443")
	src6 = netip.MustParseAddrPort("[2001:db8::1]:12345")
	dst6 = netip.MustParseAddrPort("[2001:db8::2]:443")
)

var readTests = []struct {
	name     string
	in       string
	src, dst netip.AddrPort
	err      error // nil, ErrNoHeader or ErrInvalid
}{
	{name: "v1 TCP4", in: "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n", src: src4, dst: dst4},
	{name: "v1 TCP6", in: "PROXY TCP6 2001:db8::1 2001:db8::2 12345 443\r\n", src: src6, dst: dst6},
	{name: "v1 UNKNOWN alone", in: "PROXY UNKNOWN\r\n"},
	{name: "v1 UNKNOWN with ignored addresses", in: "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n"},
	{name: "v1 longest line is accepted", in: "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n",
		src: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535"), dst: netip.MustParseAddrPort("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")},
	{name: "v1 port zero", in: "PROXY TCP4 192.0.2.1 198.51.100.7 0 443\r\n", src: netip.MustParseAddrPort("192.0.2.1:0"), dst: dst4},
	{name: "v1 without CR is rejected", in: "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\n", err: ErrInvalid},
	{name: "v1 longer than 107 bytes is rejected", in: "PROXY UNKNOWN " + strings.Repeat("x", 100) + "\r\n", err: ErrInvalid},
	{name: "v1 cut short is rejected", in: "PROXY TCP4 192.0.2.1", err: ErrInvalid},
	{name: "v1 IPv6 address under TCP4 is rejected", in: "PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n", err: ErrInvalid},
	{name: "v1 IPv4 address under TCP6 is rejected", in: "PROXY TCP6 192.0.2.1 2001:db8::2 1 2\r\n", err: ErrInvalid},
	{name: "v1 zoned address is rejected", in: "PROXY TCP6 fe80::1%eth0 2001:db8::2 1 2\r\n", err: ErrInvalid},
	{name: "v1 port above 65535 is rejected", in: "PROXY TCP4 192.0.2.1 198.51.100.7 65536 443\r\n", err: ErrInvalid},
	{name: "v1 port with leading zero is rejected", in: "PROXY TCP4 192.0.2.1 198.51.100.7 0443 443\r\n", err: ErrInvalid},
	{name: "v1 signed port is rejected", in: "PROXY TCP4 192.0.2.1 198.51.100.7 +1 443\r\n", err: ErrInvalid},
	{name: "v1 missing port is rejected", in: "PROXY TCP4 192.0.2.1 198.51.100.7 443\r\n", err: ErrInvalid},
	{name: "v1 extra field is rejected", in: "PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n", err: ErrInvalid},
	{name: "v1 double space is rejected", in: "PROXY TCP4  192.0.2.1 198.51.100.7 1 2\r\n", err: ErrInvalid},
	{name: "v1 unknown protocol is rejected", in: "PROXY UDP4 192.0.2.1 198.51.100.7 1 2\r\n", err: ErrInvalid},
	{name: "v1 lower case is not a header", in: "proxy TCP4 192.0.2.1 198.51.100.7 1 2\r\n", err: ErrNoHeader},
	{name: "plain HTTP is not a header", in: "GET / HTTP/1.1\r\n\r\n", err: ErrNoHeader},
	{name: "HTTP POST is not a header", in: "POST / HTTP/1.1\r\n\r\n", err: ErrNoHeader},
	{name: "empty stream is not a header", in: "", err: ErrNoHeader},

	{name: "v2 TCP over IPv4", in: v2(0x21, 0x11, ip4Addrs()), src: src4, dst: dst4},
	{name: "v2 UDP over IPv4", in: v2(0x21, 0x12, ip4Addrs()), src: src4, dst: dst4},
	{name: "v2 TCP over IPv6", in: v2(0x21, 0x21, ip6Addrs()), src: src6, dst: dst6},
	{name: "v2 TLVs are skipped", in: v2(0x21, 0x11, ip4Addrs(), tlv(0x02, "example.org"), tlv(0x05, "id-1")), src: src4, dst: dst4},
	{name: "v2 LOCAL ignores addresses", in: v2(0x20, 0x11, ip4Addrs())},
	{name: "v2 LOCAL with UNSPEC and no body", in: v2(0x20, 0x00)},
	{name: "v2 PROXY with UNSPEC names nobody", in: v2(0x21, 0x00, []byte("ignored"))},
	{name: "v2 UNIX addresses are ignored", in: v2(0x21, 0x31, make([]byte, 216))},
	{name: "v2 version 1 is rejected", in: v2(0x11, 0x11, ip4Addrs()), err: ErrInvalid},
	{name: "v2 unknown command is rejected", in: v2(0x22, 0x11, ip4Addrs()), err: ErrInvalid},
	{name: "v2 unknown family is rejected", in: v2(0x21, 0x41, ip4Addrs()), err: ErrInvalid},
	{name: "v2 unknown transport is rejected", in: v2(0x21, 0x13, ip4Addrs()), err: ErrInvalid},
	{name: "v2 length too short for IPv4 is rejected", in: v2(0x21, 0x11, ip4Addrs()[:11]), err: ErrInvalid},
	{name: "v2 length too short for IPv6 is rejected", in: v2(0x21, 0x21, ip4Addrs()), err: ErrInvalid},
	{name: "v2 body shorter than its length is rejected", in: v2Len(0x21, 0x11, 40, ip4Addrs()), err: ErrInvalid},
	{name: "v2 fixed part cut short is rejected", in: string(v2Sig[:]) + "\x21", err: ErrInvalid},
	{name: "v2 bad signature is not a header", in: "\r\n\r\n\x00\r\nquit\n\x21\x11\x00\x0c", err: ErrNoHeader},
}

func TestReadParsesGoodHeadersAndRejectsBadOnes(t *testing.T) {
	for _, tt := range readTests {
		t.Run(tt.name, func(t *testing.T) {
			const payload = "GET / HTTP/1.1\r\n"
			br := bufio.NewReader(strings.NewReader(tt.in + payload))
			src, dst, err := Read(br)
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("err = %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if src != tt.src || dst != tt.dst {
				t.Errorf("got %v -> %v, want %v -> %v", src, dst, tt.src, tt.dst)
			}
			rest, _ := io.ReadAll(br)
			if string(rest) != payload {
				t.Errorf("data after header = %q, want %q", rest, payload)
			}
		})
	}
}

func TestReadV2SkipsLargeTLVsWithoutBuffering(t *testing.T) {
	big := bytes.Repeat([]byte{0xAB}, 60000)
	in := v2(0x21, 0x11, ip4Addrs(), tlv(0xE0, string(big[:60000-3-12])))
	br := bufio.NewReaderSize(strings.NewReader(in+"X"), 16)
	src, _, err := Read(br)
	if err != nil || src != src4 {
		t.Fatalf("Read = %v, %v", src, err)
	}
	if b, _ := br.ReadByte(); b != 'X' {
		t.Errorf("next byte %q, want X", b)
	}
}

func FuzzRead(f *testing.F) {
	for _, tt := range readTests {
		f.Add([]byte(tt.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		br := bufio.NewReaderSize(bytes.NewReader(in), 16)
		src, dst, err := Read(br)
		if err != nil {
			if src.IsValid() || dst.IsValid() {
				t.Fatalf("error %v with addresses %v %v", err, src, dst)
			}
			if !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrNoHeader) {
				t.Fatalf("error %v is neither ErrInvalid nor ErrNoHeader", err)
			}
			return
		}
		rest, _ := io.ReadAll(br)
		consumed := len(in) - len(rest)
		if in[0] == 'P' && consumed > v1MaxLen {
			t.Fatalf("v1 consumed %d bytes", consumed)
		}
		if src.IsValid() != dst.IsValid() {
			t.Fatalf("only one address valid: %v %v", src, dst)
		}
		// Round trip: what was read, written again, reads back the same.
		for _, h := range [][]byte{appendV1(nil, src, dst), appendV2(nil, src, dst)} {
			src2, dst2, err := Read(bufio.NewReader(bytes.NewReader(h)))
			if err != nil || src2 != src || dst2 != dst {
				t.Fatalf("round trip of %v %v through %q: %v %v %v", src, dst, h, src2, dst2, err)
			}
		}
	})
}
