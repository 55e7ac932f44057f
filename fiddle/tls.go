package fiddle

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/guard"
)

// selfSigned makes the run's certificate: the one the fiddle's listener
// presents to its client, and the one the mock origins present to the
// engine. It names 127.0.0.1, localhost and the names given; it is made
// for one run, and its key never leaves the process.
func selfSigned(names []string) (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("fiddle certificate: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(now.UnixNano()),
		Subject:               pkix.Name{CommonName: "outpost fiddle"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if n != "" && !slices.Contains(tmpl.DNSNames, n) {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("fiddle certificate: %w", err)
	}
	cert := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	return cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// loopbackPair returns the two ends of a loopback TCP connection. Not
// net.Pipe: an HTTP/2 endpoint writes its preface while the other writes
// its own, which needs buffers between them.
func loopbackPair() (net.Conn, net.Conn, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, fmt.Errorf("fiddle connection: %w", err)
	}
	defer ln.Close()
	cc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return nil, nil, fmt.Errorf("fiddle connection: %w", err)
	}
	sc, err := ln.Accept()
	if err != nil {
		cc.Close()
		return nil, nil, fmt.Errorf("fiddle connection: %w", err)
	}
	return sc, cc, nil
}

// handshake runs a real TLS handshake over a loopback connection: the
// fiddle as the client (sending sni, offering alpn), the server side as a
// listener does it, with the production fingerprint (guard.JA4) taken
// from the ClientHello. It returns the server's end of the connection,
// the client's, and the fingerprint.
func handshake(ctx context.Context, cert tls.Certificate, sni string, alpn []string) (*tls.Conn, *tls.Conn, string, error) {
	sc, cc, err := loopbackPair()
	if err != nil {
		return nil, nil, "", err
	}
	var ja4 string
	srv := tls.Server(sc, &tls.Config{
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2", "http/1.1"},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			ja4 = guard.JA4(h)
			return nil, nil
		},
	})
	// The client is the fiddle's own and so is the certificate: there is
	// nothing to verify, and the SNI may be any name the user types.
	cli := tls.Client(cc, &tls.Config{ServerName: sni, InsecureSkipVerify: true, NextProtos: alpn})
	hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- srv.HandshakeContext(hctx) }()
	cerr := cli.HandshakeContext(hctx)
	serr := <-errc
	if cerr != nil || serr != nil {
		sc.Close()
		cc.Close()
		return nil, nil, "", fmt.Errorf("TLS handshake (sni %q): client: %v; server: %v", sni, cerr, serr)
	}
	return srv, cli, ja4, nil
}

// mockTLS sets up an upstream's mocks to speak what the upstream is
// configured to: TLS with the run's certificate, which the upstream is
// made to trust (tls.ca points at it; tls.verify stays as configured, so
// a name the certificate lacks fails as it would), and HTTP/2 for h2 and
// h2c. It returns the mocks' TLS config (nil for cleartext), whether they
// speak HTTP/2, and what it changed in the upstream, for the notes.
func (r *runner) mockTLS(u *config.Upstream) (*tls.Config, bool, string, error) {
	h2 := u.Protocol == config.ProtocolH2 || u.Protocol == config.ProtocolH2C
	if !u.TLS.Enabled {
		return nil, h2, "", nil
	}
	cert, err := r.certificate()
	if err != nil {
		return nil, false, "", err
	}
	if r.tmp == "" {
		if r.tmp, err = os.MkdirTemp("", "outpost-fiddle-*"); err != nil { // 0700
			return nil, false, "", fmt.Errorf("fiddle: the mock origins' CA file: %w", err)
		}
	}
	ca := filepath.Join(r.tmp, "mock-ca.pem")
	if err := os.WriteFile(ca, r.certPEM, 0o600); err != nil {
		return nil, false, "", fmt.Errorf("fiddle: the mock origins' CA file: %w", err)
	}
	var changed []string
	u.TLS.CA = ca
	changed = append(changed, "tls.ca is the fiddle's certificate for its mock origins")
	if u.TLS.ClientCert != "" {
		u.TLS.ClientCert, u.TLS.ClientKey = "", ""
		changed = append(changed, "no client certificate (the mocks ask for none)")
	}
	if u.TLS.SNI == "" {
		// The mocks listen on 127.0.0.1: the name the servers' addrs gave
		// is sent instead, when they all give the same one.
		if host := commonHost(u.Servers); host != "" {
			u.TLS.SNI = host
			changed = append(changed, "tls.sni "+host+" (the servers' host; the mocks listen on 127.0.0.1)")
		}
	}
	if !u.TLS.Verify {
		changed = append(changed, "tls.verify false: the mocks' certificate is not checked")
	}
	proto := []string{"http/1.1"}
	if h2 {
		proto = []string{"h2"}
	}
	conf := &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: proto}
	return conf, h2, strings.Join(changed, "; "), nil
}

// commonHost returns the host all servers' addrs name, "" when they name
// different hosts or an IP address.
func commonHost(servers []config.Server) string {
	host := ""
	for _, s := range servers {
		h := hostOf(s.Addr)
		if net.ParseIP(h) != nil || (host != "" && h != host) {
			return ""
		}
		host = h
	}
	return host
}

func hostOf(addr string) string {
	if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}
