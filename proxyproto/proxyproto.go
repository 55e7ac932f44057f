// Package proxyproto reads the PROXY protocol header (versions 1 and 2) that a
// load balancer in front of Outpost sends ahead of each connection, so that
// the real client address survives a TCP hop. It owns only the header: Read
// parses one from a bufio.Reader, Wrap turns a net.Listener into one whose
// connections report the client from the header as their RemoteAddr (and
// that accepts connections only from the balancers' networks).
//
// It is hand-written rather than taken from a library because the format is
// two short pages of spec, the parser must be strict and bounded (a header
// is at most 107 bytes in v1, 16+65535 in v2, and only the 12 to 36 address
// bytes of v2 are ever held), and the listener must not read in Accept; the
// whole package is about 400 lines with no dependency beyond the standard
// library.
//
// What Read returns, by header:
//
//	header                         src, dst           err
//	v1 TCP4 / TCP6                 the addresses      nil
//	v1 UNKNOWN                     zero AddrPorts     nil
//	v2 PROXY, TCP/UDP over IPv4/6  the addresses      nil
//	v2 LOCAL (health checks)       zero AddrPorts     nil
//	v2 PROXY, UNIX or UNSPEC       zero AddrPorts     nil
//	anything else                  zero AddrPorts     wraps ErrNoHeader or ErrInvalid
//
// A zero AddrPort means "use the connection's own address".
package proxyproto

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Errors returned by Read; each is wrapped with detail.
var (
	// ErrNoHeader means the stream does not start with a PROXY header.
	ErrNoHeader = errors.New("proxyproto: no PROXY protocol header")
	// ErrInvalid means the stream starts like a PROXY header but breaks the spec.
	ErrInvalid = errors.New("proxyproto: invalid PROXY protocol header")
)

// v1MaxLen is the longest v1 header, CRLF included (spec section 2.1).
const v1MaxLen = 107

// v2Sig is the 12-byte signature that starts every v2 header.
var v2Sig = [12]byte{'\r', '\n', '\r', '\n', 0, '\r', '\n', 'Q', 'U', 'I', 'T', '\n'}

// Read consumes one PROXY header from br and returns the source (client) and
// destination addresses it carries. On error, br may have been partly
// consumed and the connection should be closed.
func Read(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	first, err := br.Peek(1)
	if err != nil {
		return src, dst, fmt.Errorf("%w: %w", ErrNoHeader, err)
	}
	switch first[0] {
	case 'P':
		return readV1(br)
	case '\r':
		return readV2(br)
	}
	return src, dst, fmt.Errorf("%w: starts with byte %#x", ErrNoHeader, first[0])
}

// readV1 reads "PROXY <proto> <src> <dst> <sport> <dport>\r\n".
func readV1(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	var buf [v1MaxLen]byte
	line, err := readLine(br, buf[:])
	if err != nil {
		return src, dst, err
	}
	rest, ok := cutPrefix(line, "PROXY ")
	if !ok {
		return src, dst, fmt.Errorf("%w: v1 header does not start with \"PROXY \"", ErrNoHeader)
	}
	if _, ok := cutPrefix(rest, "UNKNOWN"); ok && (len(rest) == 7 || rest[7] == ' ') {
		// The sender could not tell; whatever follows is to be ignored.
		return src, dst, nil
	}
	proto, rest := nextField(rest)
	var want4 bool
	switch string(proto) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return src, dst, fmt.Errorf("%w: v1 protocol %q", ErrInvalid, string(proto))
	}
	var f [4][]byte
	for i := range f {
		f[i], rest = nextField(rest)
	}
	if rest != nil {
		return src, dst, fmt.Errorf("%w: v1 header has extra fields", ErrInvalid)
	}
	srcIP, err1 := parseV1Addr(f[0], want4)
	dstIP, err2 := parseV1Addr(f[1], want4)
	sport, err3 := parsePort(f[2])
	dport, err4 := parsePort(f[3])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return src, dst, fmt.Errorf("%w: v1: %w", ErrInvalid, err)
	}
	return netip.AddrPortFrom(srcIP, sport), netip.AddrPortFrom(dstIP, dport), nil
}

// readLine reads up to and including CRLF into buf and returns the line
// without CRLF. It never reads more than len(buf) bytes.
func readLine(br *bufio.Reader, buf []byte) ([]byte, error) {
	for n := 0; n < len(buf); n++ {
		c, err := br.ReadByte()
		if err != nil {
			return nil, fmt.Errorf("%w: v1 header cut short: %w", ErrInvalid, err)
		}
		buf[n] = c
		if c != '\n' {
			continue
		}
		if n == 0 || buf[n-1] != '\r' {
			return nil, fmt.Errorf("%w: v1 line ends without CRLF", ErrInvalid)
		}
		return buf[:n-1], nil
	}
	return nil, fmt.Errorf("%w: v1 header longer than %d bytes", ErrInvalid, len(buf))
}

// nextField splits s at the first space. rest is nil when s has no space.
func nextField(s []byte) (field, rest []byte) {
	for i, c := range s {
		if c == ' ' {
			return s[:i], s[i+1:]
		}
	}
	return s, nil
}

func cutPrefix(s []byte, prefix string) ([]byte, bool) {
	if len(s) < len(prefix) || string(s[:len(prefix)]) != prefix {
		return s, false
	}
	return s[len(prefix):], true
}

func parseV1Addr(b []byte, want4 bool) (netip.Addr, error) {
	ip, err := netip.ParseAddr(string(b))
	switch {
	case err != nil:
		return ip, err
	case ip.Zone() != "":
		return ip, fmt.Errorf("address %q has a zone", string(b))
	case want4 != ip.Is4():
		return ip, fmt.Errorf("address %q does not match the protocol", string(b))
	}
	return ip, nil
}

// parsePort accepts 1 to 5 decimal digits up to 65535, with no sign and no
// leading zero.
func parsePort(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (b[0] == '0' && len(b) > 1) {
		return 0, fmt.Errorf("port %q", string(b))
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("port %q", string(b))
		}
		n = n*10 + int(c-'0')
	}
	if n > 65535 {
		return 0, fmt.Errorf("port %q out of range", string(b))
	}
	return uint16(n), nil
}

// v2 command and family values (spec section 2.2).
const (
	cmdLocal = 0x0
	cmdProxy = 0x1

	famUnspec = 0x0
	famInet   = 0x1
	famInet6  = 0x2
	famUnix   = 0x3

	protoUnspec = 0x0
	protoStream = 0x1
	protoDgram  = 0x2
)

// readV2 reads the 16-byte fixed part, the addresses it announces, and skips
// the rest of the announced length (TLVs) without buffering it.
func readV2(br *bufio.Reader) (src, dst netip.AddrPort, err error) {
	var hdr [16]byte
	if err := readFull(br, hdr[:]); err != nil {
		return src, dst, fmt.Errorf("%w: v2 header cut short: %w", ErrInvalid, err)
	}
	if [12]byte(hdr[:12]) != v2Sig {
		return src, dst, fmt.Errorf("%w: bad v2 signature", ErrNoHeader)
	}
	version, cmd := hdr[12]>>4, hdr[12]&0xf
	family, proto := hdr[13]>>4, hdr[13]&0xf
	length := int(binary.BigEndian.Uint16(hdr[14:]))
	if version != 2 {
		return src, dst, fmt.Errorf("%w: v2 version %d", ErrInvalid, version)
	}
	if cmd != cmdLocal && cmd != cmdProxy {
		return src, dst, fmt.Errorf("%w: v2 command %#x", ErrInvalid, cmd)
	}
	if proto > protoDgram || family > famUnix || (family == famUnspec) != (proto == protoUnspec) {
		return src, dst, fmt.Errorf("%w: v2 family/protocol %#x", ErrInvalid, hdr[13])
	}
	var addrLen int
	switch family {
	case famInet:
		addrLen = 12
	case famInet6:
		addrLen = 36
	case famUnix:
		addrLen = 216
	}
	if length < addrLen {
		return src, dst, fmt.Errorf("%w: v2 length %d too short for its addresses (%d)", ErrInvalid, length, addrLen)
	}
	var addrs [36]byte
	if family == famInet || family == famInet6 {
		if err := readFull(br, addrs[:addrLen]); err != nil {
			return src, dst, fmt.Errorf("%w: v2 addresses cut short: %w", ErrInvalid, err)
		}
		length -= addrLen
	}
	if _, err := br.Discard(length); err != nil {
		return src, dst, fmt.Errorf("%w: v2 body cut short: %w", ErrInvalid, err)
	}
	if cmd == cmdLocal {
		return src, dst, nil
	}
	switch family {
	case famInet:
		src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[0:4])), binary.BigEndian.Uint16(addrs[8:]))
		dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(addrs[4:8])), binary.BigEndian.Uint16(addrs[10:]))
	case famInet6:
		src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[0:16])), binary.BigEndian.Uint16(addrs[32:]))
		dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(addrs[16:32])), binary.BigEndian.Uint16(addrs[34:]))
	}
	return src, dst, nil
}

// readFull is io.ReadFull through Peek and Discard, so that p (a small array
// on the caller's stack) is never handed to an io.Reader and stays there.
func readFull(br *bufio.Reader, p []byte) error {
	for len(p) > 0 {
		b, err := br.Peek(min(len(p), br.Size()))
		n := copy(p, b)
		br.Discard(n) // n bytes are buffered, so this cannot fail
		p = p[n:]
		if err != nil && len(p) > 0 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}
