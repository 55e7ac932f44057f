package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// testCA signs leaf certificates for the tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
	file string // PEM of the CA certificate
}

func newCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "outpost test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	file := filepath.Join(t.TempDir(), "ca.pem")
	writeFile(t, file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	return &testCA{cert: cert, key: key, pool: pool, file: file}
}

// issue writes a leaf for names with the given serial to dir/base.{crt,key},
// valid from an hour ago to an hour from now.
func (ca *testCA) issue(t testing.TB, dir, base string, serial int64, names ...string) Pair {
	t.Helper()
	return ca.issueValid(t, dir, base, serial, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), names...)
}

func (ca *testCA) issueValid(t testing.TB, dir, base string, serial int64, notBefore, notAfter time.Time, names ...string) Pair {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    notBefore,
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := Pair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	writeFile(t, p.CertFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, p.KeyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	return p
}

// writeFile writes data and moves the modification time forward, so the
// poller sees a change even on file systems with coarse timestamps.
func writeFile(t testing.TB, name string, data []byte) {
	t.Helper()
	var mtime time.Time
	if fi, err := os.Stat(name); err == nil {
		mtime = fi.ModTime().Add(time.Second)
	} else {
		mtime = time.Now()
	}
	if err := os.WriteFile(name, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(name, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func newStore(t *testing.T, interval time.Duration, log *slog.Logger, pairs ...Pair) *Store {
	t.Helper()
	s, err := New(t.Context(), Config{Pairs: pairs, PollInterval: interval, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

var selectTests = []struct {
	name       string
	serverName string
	wantSerial int64
}{
	{"exact name picks its certificate", "api.example.org", 2},
	{"exact name is matched case-insensitively", "API.Example.ORG", 2},
	{"trailing dot is ignored", "api.example.org.", 2},
	{"wildcard covers one label", "www.example.org", 3},
	{"exact beats wildcard", "api.example.org", 2},
	{"wildcard does not cover two labels", "a.b.example.org", 1},
	{"wildcard does not cover the bare domain", "example.org", 1},
	{"unknown name gets the default", "other.test", 1},
	{"no SNI gets the default", "", 1},
	{"second name of a certificate", "static.example.net", 2},
}

func TestGetCertificateSelectsBySNI(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	s := newStore(t, -1, nil,
		ca.issue(t, dir, "default", 1, "default.test"),
		ca.issue(t, dir, "api", 2, "api.example.org", "static.example.net"),
		ca.issue(t, dir, "wild", 3, "*.example.org"),
	)
	for _, tt := range selectTests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tt.serverName})
			if err != nil {
				t.Fatal(err)
			}
			if got := c.Leaf.SerialNumber.Int64(); got != tt.wantSerial {
				t.Errorf("serial = %d, want %d", got, tt.wantSerial)
			}
		})
	}
}

func TestNewFailsOnBadFiles(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	good := ca.issue(t, dir, "good", 1, "a.test")
	other := ca.issue(t, dir, "other", 2, "b.test")
	tests := []struct {
		name  string
		pairs []Pair
	}{
		{"no pairs", nil},
		{"missing cert file", []Pair{{CertFile: filepath.Join(dir, "nope.crt"), KeyFile: good.KeyFile}}},
		{"key of another certificate", []Pair{{CertFile: good.CertFile, KeyFile: other.KeyFile}}},
		{"cert file that is not PEM", []Pair{{CertFile: ca.file + "x", KeyFile: good.KeyFile}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(t.Context(), Config{Pairs: tt.pairs, PollInterval: -1}); err == nil {
				t.Fatal("New succeeded")
			}
		})
	}
}

// server runs a TLS echo server with ServerConfig(store, opts).
func server(t *testing.T, store *Store, opts ServerOptions) string {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", ServerConfig(store, opts))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				io.Copy(c, c)
			})
		}
	})
	return ln.Addr().String()
}

func dial(t *testing.T, addr string, cfg *tls.Config) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func serial(c *tls.Conn) int64 {
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// echo checks that c still carries data both ways.
func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != msg {
		t.Fatalf("echo = %q, %v", buf, err)
	}
}

// syncBuffer collects log output from the poller goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// eventually polls cond every few milliseconds for up to 10 seconds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestReloadSwapsCertificatesWithoutDroppingConnections(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	store := newStore(t, 10*time.Millisecond, log, ca.issue(t, dir, "site", 1, "site.test"))
	addr := server(t, store, ServerOptions{})
	client := &tls.Config{ServerName: "site.test", RootCAs: ca.pool}

	old := dial(t, addr, client)
	echo(t, old, "before")
	if serial(old) != 1 {
		t.Fatalf("first serial = %d", serial(old))
	}

	ca.issue(t, dir, "site", 2, "site.test")
	eventually(t, "the new certificate", func() bool {
		c := dial(t, addr, client)
		defer c.Close()
		return serial(c) == 2
	})
	echo(t, old, "after reload")

	writeFile(t, filepath.Join(dir, "site.crt"), []byte("-----BEGIN CERTIFICATE-----\nbroken\n"))
	eventually(t, "the reload error in the log", func() bool {
		return strings.Contains(logs.String(), "reload failed")
	})
	if c := dial(t, addr, client); serial(c) != 2 {
		t.Errorf("serial after a broken file = %d, want the old 2", serial(c))
	}
	echo(t, old, "after broken file")
	if n := strings.Count(logs.String(), "reload failed"); n != 1 {
		t.Errorf("broken file logged %d times, want once", n)
	}
}

func TestReloadReturnsErrorAndKeepsOldSet(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	p := ca.issue(t, dir, "site", 1, "site.test")
	store := newStore(t, -1, nil, p)
	writeFile(t, p.KeyFile, []byte("not a key"))
	if err := store.Reload(); err == nil {
		t.Fatal("Reload succeeded with a broken key")
	}
	c, _ := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "site.test"})
	if c.Leaf.SerialNumber.Int64() != 1 {
		t.Errorf("serial = %d, want the old 1", c.Leaf.SerialNumber.Int64())
	}
}

func TestCloseStopsThePoller(t *testing.T) {
	ca := newCA(t)
	ctx, cancel := context.WithCancel(t.Context())
	s, err := New(ctx, Config{Pairs: []Pair{ca.issue(t, t.TempDir(), "a", 1, "a.test")}, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	<-s.done // the poller exits on its own when ctx ends
	s.Close()
}

func TestExpiredCertificateIsServedWithAWarning(t *testing.T) {
	ca := newCA(t)
	var logs syncBuffer
	past := time.Now().Add(-48 * time.Hour)
	p := ca.issueValid(t, t.TempDir(), "old", 7, past, past.Add(time.Hour), "old.test")
	s := newStore(t, -1, slog.New(slog.NewTextHandler(&logs, nil)), p)
	if leaves := s.Leaves(); len(leaves) != 1 || leaves[0].SerialNumber.Int64() != 7 {
		t.Fatalf("Leaves = %v", leaves)
	}
	if !strings.Contains(logs.String(), "outside its validity period") || !strings.Contains(logs.String(), p.CertFile) {
		t.Errorf("no warning naming the file in the log:\n%s", logs.String())
	}
}

// Kubernetes and certbot replace certificate files by renaming a new file
// (or symlink) over the old one; the poller must see through that.
func TestReloadFollowsAtomicRename(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	p := ca.issue(t, dir, "site", 1, "site.test")
	store := newStore(t, 10*time.Millisecond, nil, p)

	staging := t.TempDir()
	next := ca.issue(t, staging, "site", 2, "site.test")
	for _, mv := range [][2]string{{next.KeyFile, p.KeyFile}, {next.CertFile, p.CertFile}} {
		if err := os.Rename(mv[0], mv[1]); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "the renamed certificate", func() bool {
		c, _ := store.GetCertificate(&tls.ClientHelloInfo{ServerName: "site.test"})
		return c.Leaf.SerialNumber.Int64() == 2
	})
}
