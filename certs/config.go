package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// ServerOptions tunes ServerConfig. The zero value gives TLS 1.2 and 1.3,
// ALPN h2 then http/1.1, and no client certificates.
type ServerOptions struct {
	// MinVersion is the lowest TLS version accepted: tls.VersionTLS12 or
	// tls.VersionTLS13. Zero means TLS 1.2.
	MinVersion uint16
	// NextProtos are the ALPN protocols offered, in preference order.
	// Nil means ["h2", "http/1.1"].
	NextProtos []string
	// ClientCAs, when set, turns on mutual TLS: clients must present a
	// certificate signed by one of these CAs. Nil means no client certificates.
	ClientCAs *x509.CertPool
	// ClientCertOptional lets clients without a certificate in; one that is
	// presented must still verify against ClientCAs.
	ClientCertOptional bool
}

// ServerConfig returns a listener configuration serving certificates from
// store. Cipher suites and key exchange groups are left to Go's defaults,
// which keep up with current advice; in particular the hybrid post-quantum
// X25519MLKEM768 group is offered first to TLS 1.3 clients.
func ServerConfig(store *Store, opts ServerOptions) *tls.Config {
	cfg := &tls.Config{
		GetCertificate: store.GetCertificate,
		MinVersion:     opts.MinVersion,
		NextProtos:     opts.NextProtos,
	}
	if cfg.MinVersion < tls.VersionTLS12 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.NextProtos == nil {
		cfg.NextProtos = []string{"h2", "http/1.1"}
	}
	if opts.ClientCAs != nil {
		cfg.ClientCAs = opts.ClientCAs
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		if opts.ClientCertOptional {
			cfg.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return cfg
}

// LoadCertPool reads a PEM file of CA certificates, for ServerOptions.ClientCAs.
func LoadCertPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("certs: CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("certs: CA file %s holds no PEM certificate", file)
	}
	return pool, nil
}

// ClientConfig returns a configuration for TLS to an upstream. sni is the
// server name sent and verified. verify=false skips verification (for origins
// with self-signed certificates; never the default). caFile, if not empty,
// replaces the system roots. certFile and keyFile, both or neither, give the
// client certificate for mutual TLS. ALPN is left to the caller.
//
// Each configuration has its own session cache, so new connections to the
// same upstream resume a session instead of paying for a full handshake.
func ClientConfig(sni string, verify bool, caFile, certFile, keyFile string) (*tls.Config, error) {
	cfg := &tls.Config{
		ServerName:         sni,
		InsecureSkipVerify: !verify,
		MinVersion:         tls.VersionTLS12,
		ClientSessionCache: tls.NewLRUClientSessionCache(0),
	}
	if caFile != "" {
		pool, err := LoadCertPool(caFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if (certFile == "") != (keyFile == "") {
		return nil, errors.New("certs: client certificate needs both a cert file and a key file")
	}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("certs: client certificate %s: %w", certFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return cfg, nil
}
