package certs

import (
	"crypto/tls"
	"io"
	"path/filepath"
	"testing"
	"time"
)

func TestServerConfigNegotiatesHybridPostQuantumKeyExchange(t *testing.T) {
	ca := newCA(t)
	store := newStore(t, -1, nil, ca.issue(t, t.TempDir(), "site", 1, "site.test"))
	addr := server(t, store, ServerOptions{})
	c := dial(t, addr, &tls.Config{ServerName: "site.test", RootCAs: ca.pool, NextProtos: []string{"h2", "http/1.1"}})
	st := c.ConnectionState()
	if st.Version != tls.VersionTLS13 {
		t.Errorf("version = %s, want TLS 1.3", tls.VersionName(st.Version))
	}
	if st.CurveID != tls.X25519MLKEM768 {
		t.Errorf("key exchange = %s, want X25519MLKEM768", st.CurveID)
	}
	if st.NegotiatedProtocol != "h2" {
		t.Errorf("ALPN = %q, want h2", st.NegotiatedProtocol)
	}
}

func TestServerConfigVersions(t *testing.T) {
	ca := newCA(t)
	store := newStore(t, -1, nil, ca.issue(t, t.TempDir(), "site", 1, "site.test"))
	tests := []struct {
		name      string
		serverMin uint16
		clientMax uint16
		ok        bool
	}{
		{"TLS 1.2 is accepted by default", 0, tls.VersionTLS12, true},
		{"TLS 1.1 is refused by default", 0, tls.VersionTLS11, false},
		{"TLS 1.2 is refused when 1.3 is required", tls.VersionTLS13, tls.VersionTLS12, false},
		{"TLS 1.3 is accepted when required", tls.VersionTLS13, tls.VersionTLS13, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := server(t, store, ServerOptions{MinVersion: tt.serverMin})
			c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "site.test", RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tt.clientMax})
			if err == nil {
				c.Close()
			}
			if (err == nil) != tt.ok {
				t.Errorf("handshake err = %v, want ok=%v", err, tt.ok)
			}
		})
	}
}

func TestServerConfigRequiresClientCertificatesWithClientCAs(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	store := newStore(t, -1, nil, ca.issue(t, dir, "site", 1, "site.test"))
	pool, err := LoadCertPool(ca.file)
	if err != nil {
		t.Fatal(err)
	}
	clientPair := ca.issue(t, dir, "client", 9, "client.test")
	for _, optional := range []bool{false, true} {
		addr := server(t, store, ServerOptions{ClientCAs: pool, ClientCertOptional: optional})

		with, err := ClientConfig("site.test", true, ca.file, clientPair.CertFile, clientPair.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		echo(t, dial(t, addr, with), "with a client certificate")

		without, err := ClientConfig("site.test", true, ca.file, "", "")
		if err != nil {
			t.Fatal(err)
		}
		c := dial(t, addr, without)
		c.SetDeadline(time.Now().Add(5 * time.Second))
		io.WriteString(c, "x")
		_, err = c.Read(make([]byte, 1))
		if optional && err != nil {
			t.Errorf("optional client cert: connection without one failed: %v", err)
		}
		if !optional && err == nil {
			t.Error("required client cert: connection without one was served")
		}
	}
}

func TestClientConfig(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	store := newStore(t, -1, nil, ca.issue(t, dir, "site", 1, "site.test"))
	addr := server(t, store, ServerOptions{})
	pair := ca.issue(t, dir, "client", 2, "client.test")
	tests := []struct {
		name                      string
		sni                       string
		verify                    bool
		caFile, certFile, keyFile string
		configErr, handshakeErr   bool
	}{
		{name: "verified against the given CA", sni: "site.test", verify: true, caFile: ca.file},
		{name: "wrong name fails verification", sni: "other.test", verify: true, caFile: ca.file, handshakeErr: true},
		{name: "system roots do not know the test CA", sni: "site.test", verify: true, handshakeErr: true},
		{name: "verification off accepts anything", sni: "other.test", verify: false},
		{name: "client certificate is loaded", sni: "site.test", verify: true, caFile: ca.file, certFile: pair.CertFile, keyFile: pair.KeyFile},
		{name: "cert without key is a config error", sni: "site.test", certFile: pair.CertFile, configErr: true},
		{name: "missing CA file is a config error", sni: "site.test", caFile: filepath.Join(dir, "none.pem"), configErr: true},
		{name: "CA file without PEM is a config error", sni: "site.test", caFile: pair.KeyFile, configErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := ClientConfig(tt.sni, tt.verify, tt.caFile, tt.certFile, tt.keyFile)
			if (err != nil) != tt.configErr {
				t.Fatalf("ClientConfig err = %v", err)
			}
			if err != nil {
				return
			}
			c, err := tls.Dial("tcp", addr, cfg)
			if err == nil {
				c.Close()
			}
			if (err != nil) != tt.handshakeErr {
				t.Errorf("handshake err = %v, want error=%v", err, tt.handshakeErr)
			}
		})
	}
}

func TestClientConfigResumesSessions(t *testing.T) {
	ca := newCA(t)
	store := newStore(t, -1, nil, ca.issue(t, t.TempDir(), "site", 1, "site.test"))
	addr := server(t, store, ServerOptions{})
	cfg, err := ClientConfig("site.test", true, ca.file, "", "")
	if err != nil {
		t.Fatal(err)
	}
	first := dial(t, addr, cfg)
	echo(t, first, "x") // reading lets the client take the session ticket
	second := dial(t, addr, cfg)
	if !second.ConnectionState().DidResume {
		t.Error("second connection did a full handshake")
	}
}
