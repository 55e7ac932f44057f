package guard

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"slices"
)

// Protocol letters for the first character of a JA4 fingerprint.
const (
	OverTCP  byte = 't' // TLS over TCP
	OverQUIC byte = 'q' // QUIC (HTTP/3)
	OverDTLS byte = 'd' // DTLS
)

const (
	extServerName = 0x0000
	extALPN       = 0x0010
	extVersions   = 0x002b
)

// JA4 returns the JA4 fingerprint (FoxIO's TLS client fingerprint, BSD
// 3-Clause) of a ClientHello as crypto/tls reports it, for TLS over TCP.
// Call it from tls.Config.GetConfigForClient; it costs one string per
// connection.
func JA4(hello *tls.ClientHelloInfo) string {
	var buf [36]byte
	return string(AppendJA4(buf[:0], hello, OverTCP))
}

// AppendJA4 appends the JA4 fingerprint of hello, with proto as its first
// letter (OverTCP, OverQUIC, OverDTLS), and allocates nothing for a
// ClientHello of ordinary size.
//
// crypto/tls exposes every field JA4 reads (Extensions lists every
// extension ID in wire order, GREASE included), with these limits:
//
//   - Version: JA4 takes the highest supported_versions entry, else the
//     ClientHello's legacy_version. Without the extension Go derives
//     SupportedVersions from legacy_version but lists only versions it
//     implements (TLS 1.0 to 1.3), so an SSL 3.0 client reads as "00", not
//     "s3"; Go refuses such clients anyway.
//   - ALPN: crypto/tls rejects a ClientHello with an empty protocol name
//     before any callback runs, so JA4's "00 for an empty first value"
//     never arises; "00" means no ALPN extension.
//   - SNI: presence is read from the extension list, not ServerName, so a
//     ClientHello that carries the extension counts as "d" whatever Go made
//     of its value.
//   - Which ClientHello: call it from GetConfigForClient, which Go calls
//     once with the first ClientHello (GetCertificate may see the second
//     one, after a HelloRetryRequest). When the server holds Encrypted
//     Client Hello keys and ECH succeeds, Go shows the decrypted inner
//     ClientHello, where JA4 as specified fingerprints the outer one.
func AppendJA4(dst []byte, hello *tls.ClientHelloInfo, proto byte) []byte {
	var cs, ex [128]uint16
	ciphers := withoutGREASE(cs[:0], hello.CipherSuites)
	exts := withoutGREASE(ex[:0], hello.Extensions)

	dst = append(dst, proto)
	dst = append(dst, tlsVersion(hello)...)
	if slices.Contains(exts, extServerName) {
		dst = append(dst, 'd')
	} else {
		dst = append(dst, 'i')
	}
	dst = appendCount(dst, len(ciphers))
	dst = appendCount(dst, len(exts))
	dst = appendALPN(dst, hello.SupportedProtos)

	dst = append(dst, '_')
	slices.Sort(ciphers)
	var text [1024]byte
	dst = appendTruncatedHash(dst, appendHexList(text[:0], ciphers), len(ciphers) == 0)

	dst = append(dst, '_')
	exts = slices.DeleteFunc(exts, func(e uint16) bool { return e == extServerName || e == extALPN })
	slices.Sort(exts)
	b := appendHexList(text[:0], exts)
	first := true
	for _, s := range hello.SignatureSchemes {
		if isGREASE(uint16(s)) {
			continue
		}
		if first {
			b = append(b, '_')
			first = false
		} else {
			b = append(b, ',')
		}
		b = appendHex4(b, uint16(s))
	}
	return appendTruncatedHash(dst, b, len(exts) == 0)
}

// isGREASE reports whether v is one of the reserved GREASE values (RFC
// 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
func isGREASE(v uint16) bool { return v&0x0f0f == 0x0a0a && v>>8 == v&0xff }

func withoutGREASE(dst, src []uint16) []uint16 {
	for _, v := range src {
		if !isGREASE(v) {
			dst = append(dst, v)
		}
	}
	return dst
}

func tlsVersion(hello *tls.ClientHelloInfo) string {
	var v uint16
	for _, s := range hello.SupportedVersions {
		if !isGREASE(s) && s > v {
			v = s
		}
	}
	switch v {
	case tls.VersionTLS13:
		return "13"
	case tls.VersionTLS12:
		return "12"
	case tls.VersionTLS11:
		return "11"
	case tls.VersionTLS10:
		return "10"
	case 0x0300:
		return "s3"
	case 0x0002:
		return "s2"
	}
	return "00"
}

// appendCount appends n as two digits, 99 at most.
func appendCount(dst []byte, n int) []byte {
	n = min(n, 99)
	return append(dst, byte('0'+n/10), byte('0'+n%10))
}

// appendALPN appends the first and last characters of the first ALPN
// value, or the first and last hex digits of it when either end is not an
// ASCII letter or digit, or "00" without one.
func appendALPN(dst []byte, protos []string) []byte {
	if len(protos) == 0 || protos[0] == "" {
		return append(dst, '0', '0')
	}
	p := protos[0]
	first, last := p[0], p[len(p)-1]
	if isAlnum(first) && isAlnum(last) {
		return append(dst, first, last)
	}
	const digits = "0123456789abcdef"
	return append(dst, digits[first>>4], digits[last&0x0f])
}

func isAlnum(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

// appendHexList appends vs as comma-separated four-digit lowercase hex.
func appendHexList(dst []byte, vs []uint16) []byte {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendHex4(dst, v)
	}
	return dst
}

func appendHex4(dst []byte, v uint16) []byte {
	return hex.AppendEncode(dst, []byte{byte(v >> 8), byte(v)})
}

// appendTruncatedHash appends the first 12 hex digits of SHA-256(text), or
// twelve zeros when the list it stands for is empty.
func appendTruncatedHash(dst, text []byte, empty bool) []byte {
	if empty {
		return append(dst, "000000000000"...)
	}
	sum := sha256.Sum256(text)
	return hex.AppendEncode(dst, sum[:6])
}
