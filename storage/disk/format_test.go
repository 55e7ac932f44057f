package disk

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

var headerTests = []struct {
	name string
	key  string
	meta string
	body int64
}{
	{"empty key and metadata", "", "", 0},
	{"small object", "GET http://example.com/", "HTTP/1.1 200 OK\r\n\r\n", 1024},
	{"long key", strings.Repeat("k", 5000), "m", 1 << 40},
	{"metadata of a header block", "k", strings.Repeat("Vary: Accept\r\n", 300), 7},
}

func TestHeaderRoundTrips(t *testing.T) {
	for _, tt := range headerTests {
		hd := newHeader(tt.key, []byte(tt.meta))
		hd.bodyLen, hd.bodyCRC = tt.body, 0xdeadbeef
		b := hd.appendTo(nil)
		got, need, err := parseHeader(b)
		if err != nil || need != len(b) {
			t.Fatalf("%s: parseHeader: need=%d err=%v, want %d and nil", tt.name, need, err, len(b))
		}
		if string(got.key) != tt.key || string(got.meta) != tt.meta || got.metaCap != hd.metaCap ||
			got.bodyLen != tt.body || got.bodyCRC != 0xdeadbeef {
			t.Fatalf("%s: parsed %+v, want %+v", tt.name, got, hd)
		}
		if off := got.bodyOff(); off%headAlign != 0 || got.metaCap < len(tt.meta)+metaSlack {
			t.Fatalf("%s: body at %d with a %d-byte metadata area", tt.name, off, got.metaCap)
		}
		// A prefix asks for more bytes instead of failing.
		if _, need, err := parseHeader(b[:len(b)-1]); err != nil || need != len(b) {
			t.Fatalf("%s: short buffer: need=%d err=%v", tt.name, need, err)
		}
	}
}

func TestHeaderWithAnyByteChangedIsCorrupt(t *testing.T) {
	hd := newHeader("key", []byte("meta"))
	hd.bodyLen = 99
	b := hd.appendTo(nil)
	for i := range b {
		c := bytes.Clone(b)
		c[i] ^= 0x10
		_, need, err := parseHeader(c)
		if err == nil && need <= len(c) {
			t.Fatalf("byte %d flipped: header still parses", i)
		}
		if err != nil && !errors.Is(err, errCorrupt) {
			t.Fatalf("byte %d flipped: %v, want errCorrupt", i, err)
		}
	}
}

func FuzzParseHeader(f *testing.F) {
	for _, tt := range headerTests {
		hd := newHeader(tt.key, []byte(tt.meta))
		hd.bodyLen = tt.body
		f.Add(hd.appendTo(nil))
	}
	f.Add([]byte(magic))
	hd := newHeader("k", nil)
	reserved := hd.appendTo(nil)
	reserved[32] = 1
	f.Add(reserved)
	f.Fuzz(func(t *testing.T, b []byte) {
		hd, need, err := parseHeader(b)
		if err != nil || need > len(b) {
			return
		}
		// Whatever parses re-encodes to the same bytes.
		if again := hd.appendTo(nil); !bytes.Equal(again, b[:need]) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b[:need])
		}
	})
}

func TestSipHashMatchesReferenceVectors(t *testing.T) {
	// Key 00 01 .. 0f, message 00 01 .. n-1, from the SipHash paper.
	k0, k1 := uint64(0x0706050403020100), uint64(0x0f0e0d0c0b0a0908)
	msg := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i)
		}
		return string(b)
	}
	for _, tt := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{15, 0xa129ca6149be45e5},
	} {
		if got := sipHash(k0, k1, msg(tt.n)); got != tt.want {
			t.Errorf("sipHash of %d bytes = %#x, want %#x", tt.n, got, tt.want)
		}
	}
}
