package guard

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"fmt"
	"math/big"
	"net"
	"testing"
	"time"
)

// specHello is the ClientHello of the JA4 specification's example, in its
// original order, with GREASE values added where Chrome puts them.
func specHello() *tls.ClientHelloInfo {
	return &tls.ClientHelloInfo{
		CipherSuites: []uint16{0x2a2a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
			0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035},
		Extensions: []uint16{0xdada, 0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005,
			0x0023, 0x0012, 0x002b, 0xff01, 0x000b, 0x000a, 0x0015, 0x3a3a},
		SignatureSchemes:  []tls.SignatureScheme{0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601},
		SupportedVersions: []uint16{0x7a7a, tls.VersionTLS13, tls.VersionTLS12},
		SupportedProtos:   []string{"h2", "http/1.1"},
		ServerName:        "example.com",
	}
}

var ja4Tests = []struct {
	name string
	edit func(*tls.ClientHelloInfo)
	want string
}{
	{"the specification's example, GREASE ignored", func(*tls.ClientHelloInfo) {},
		"t13d1516h2_8daaf6152771_e5627efa2ab1"},
	{"no signature algorithms hashes the extensions alone", func(h *tls.ClientHelloInfo) { h.SignatureSchemes = nil },
		"t13d1516h2_8daaf6152771_6d807ffa2a79"},
	{"no SNI extension is i and leaves the hash alone", func(h *tls.ClientHelloInfo) {
		h.Extensions = h.Extensions[3:] // drop GREASE, 001b, 0000
		h.Extensions = append(h.Extensions, 0x001b)
		h.ServerName = ""
	}, "t13i1515h2_8daaf6152771_e5627efa2ab1"},
	{"no ALPN is 00", func(h *tls.ClientHelloInfo) { h.SupportedProtos = nil }, "t13d151600_8daaf6152771_e5627efa2ab1"},
	{"http/1.1 is h1", func(h *tls.ClientHelloInfo) { h.SupportedProtos = []string{"http/1.1"} }, "t13d1516h1_8daaf6152771_e5627efa2ab1"},
	{"one character ALPN is used twice", func(h *tls.ClientHelloInfo) { h.SupportedProtos = []string{"x"} }, "t13d1516xx_8daaf6152771_e5627efa2ab1"},
	{"non-alphanumeric ALPN byte is hex", func(h *tls.ClientHelloInfo) { h.SupportedProtos = []string{"\xab"} }, "t13d1516ab_8daaf6152771_e5627efa2ab1"},
	{"non-alphanumeric ALPN ends are hex", func(h *tls.ClientHelloInfo) { h.SupportedProtos = []string{"\x30\xab\xcd\x31"} }, "t13d151601_8daaf6152771_e5627efa2ab1"},
	{"TLS 1.2 without supported_versions", func(h *tls.ClientHelloInfo) { h.SupportedVersions = []uint16{tls.VersionTLS12, tls.VersionTLS11} }, "t12d1516h2_8daaf6152771_e5627efa2ab1"},
	{"unknown version is 00", func(h *tls.ClientHelloInfo) { h.SupportedVersions = nil }, "t00d1516h2_8daaf6152771_e5627efa2ab1"},
	{"no ciphers and no extensions are zeros", func(h *tls.ClientHelloInfo) {
		h.CipherSuites, h.Extensions = []uint16{0x0a0a}, nil
	}, "t13i0000h2_000000000000_000000000000"},
}

func TestJA4(t *testing.T) {
	for _, tt := range ja4Tests {
		h := specHello()
		tt.edit(h)
		if got := JA4(h); got != tt.want {
			t.Errorf("%s: got %s, want %s", tt.name, got, tt.want)
		}
	}
}

func TestJA4CountsStopAt99(t *testing.T) {
	h := specHello()
	for i := range 200 {
		h.CipherSuites = append(h.CipherSuites, uint16(0x1000+i))
	}
	if got := JA4(h)[4:8]; got != "9916" {
		t.Fatalf("counts = %s, want 9916", got)
	}
}

func TestJA4OverQUICStartsWithQ(t *testing.T) {
	if got := string(AppendJA4(nil, specHello(), OverQUIC)); got[0] != 'q' {
		t.Fatalf("got %s", got)
	}
}

// TestJA4OfARealHandshakeMatchesTheWire captures the ClientHello bytes of a
// crypto/tls client on loopback, computes JA4 from them with an independent
// parser, and compares with JA4 from the ClientHelloInfo the server sees.
func TestJA4OfARealHandshakeMatchesTheWire(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	seen := make(chan string, 1)
	cfg := &tls.Config{
		Certificates: []tls.Certificate{selfSigned(t)},
		NextProtos:   []string{"h2", "http/1.1"},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			seen <- JA4(h)
			return nil, nil
		},
	}
	wire := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		rec := &recordingConn{Conn: c}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Server(rec, cfg)
		tc.Handshake()
		wire <- rec.read
	}()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", ln.Addr().String(), &tls.Config{
		ServerName: "outpost.test", InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
	got := <-seen
	want, err := ja4FromWire(<-wire)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("JA4 from ClientHelloInfo %s, from the wire %s", got, want)
	}
	if got[:4] != "t13d" || got[8:10] != "h2" {
		t.Fatalf("JA4 %s: want TLS 1.3 to a domain with h2", got)
	}
}

type recordingConn struct {
	net.Conn
	read []byte
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if len(c.read) < 1<<16 {
		c.read = append(c.read, p[:n]...)
	}
	return n, err
}

// ja4FromWire parses a TLS record holding a ClientHello and computes JA4
// from it directly, as the specification describes.
func ja4FromWire(b []byte) (string, error) {
	if len(b) < 9 || b[0] != 22 || b[5] != 1 {
		return "", fmt.Errorf("not a ClientHello record")
	}
	p := b[9:]
	next := func(n int) []byte {
		if n > len(p) {
			n = len(p)
		}
		v := p[:n]
		p = p[n:]
		return v
	}
	u16 := func(v []byte) uint16 { return binary.BigEndian.Uint16(v) }
	hello := &tls.ClientHelloInfo{}
	legacy := u16(next(2))
	next(32)                      // random
	next(int(next(1)[0]))         // session id
	cs := next(int(u16(next(2)))) // cipher suites
	for i := 0; i+1 < len(cs); i += 2 {
		hello.CipherSuites = append(hello.CipherSuites, u16(cs[i:]))
	}
	next(int(next(1)[0])) // compression
	exts := next(int(u16(next(2))))
	hello.SupportedVersions = []uint16{legacy}
	for len(exts) >= 4 {
		typ, n := u16(exts), int(u16(exts[2:]))
		data := exts[4 : 4+n]
		exts = exts[4+n:]
		hello.Extensions = append(hello.Extensions, typ)
		switch typ {
		case 0x002b:
			hello.SupportedVersions = nil
			for i := 1; i+1 < len(data); i += 2 {
				hello.SupportedVersions = append(hello.SupportedVersions, u16(data[i:]))
			}
		case 0x000d:
			for i := 2; i+1 < len(data); i += 2 {
				hello.SignatureSchemes = append(hello.SignatureSchemes, tls.SignatureScheme(u16(data[i:])))
			}
		case 0x0010:
			l := data[2:]
			for len(l) > 0 {
				n := int(l[0])
				hello.SupportedProtos = append(hello.SupportedProtos, string(l[1:1+n]))
				l = l[1+n:]
			}
		}
	}
	return JA4(hello), nil
}

func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "outpost.test"},
		DNSNames:     []string{"outpost.test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func FuzzJA4(f *testing.F) {
	f.Add([]byte{0x13, 0x01, 0x0a, 0x0a}, []byte{0, 0, 0, 0x10}, []byte{4, 3}, "h2")
	f.Add([]byte{}, []byte{}, []byte{}, "")
	f.Add([]byte{0xff}, []byte{0xab, 0xcd, 0xef}, []byte{0x08}, "\xff\x00")
	f.Fuzz(func(t *testing.T, ciphers, exts, sigs []byte, alpn string) {
		h := &tls.ClientHelloInfo{SupportedVersions: []uint16{tls.VersionTLS13}, SupportedProtos: []string{alpn}}
		for i := 0; i+1 < len(ciphers); i += 2 {
			h.CipherSuites = append(h.CipherSuites, binary.BigEndian.Uint16(ciphers[i:]))
		}
		for i := 0; i+1 < len(exts); i += 2 {
			h.Extensions = append(h.Extensions, binary.BigEndian.Uint16(exts[i:]))
		}
		for i := 0; i+1 < len(sigs); i += 2 {
			h.SignatureSchemes = append(h.SignatureSchemes, tls.SignatureScheme(binary.BigEndian.Uint16(sigs[i:])))
		}
		if got := JA4(h); len(got) != 36 {
			t.Fatalf("JA4 %q is %d long, want 36", got, len(got))
		}
	})
}
