package e2e

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeCert writes a self-signed certificate for names into dir and
// returns its cert and key paths and a pool that trusts it.
func writeCert(t *testing.T, dir, base string, names ...string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: names[0]},
		DNSNames:     names,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile = filepath.Join(dir, base+".pem"), filepath.Join(dir, base+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLSTerminationPicksCertificateBySNIAndSpeaksH2(t *testing.T) {
	dir := t.TempDir()
	aCert, aKey, aPool := writeCert(t, dir, "a", "a.example")
	bCert, bKey, bPool := writeCert(t, dir, "b", "b.example", "*.b.example")
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-Proto")+" "+r.Host)
	}))
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    tls:
      certs:
        - {cert: "{{AC}}", key: "{{AK}}"}
        - {cert: "{{BC}}", key: "{{BK}}"}
`+oneRoute, "{{AC}}", aCert, "{{AK}}", aKey, "{{BC}}", bCert, "{{BK}}", bKey, "{{ORIGIN}}", origin)
	addr := strings.TrimPrefix(e.URL, "http://")
	for _, tc := range []struct {
		sni  string
		pool *x509.CertPool
	}{{"a.example", aPool}, {"b.example", bPool}, {"www.b.example", bPool}} {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{ServerName: tc.sni, RootCAs: tc.pool},
			ForceAttemptHTTP2: true,
			DialContext:       (&net.Dialer{}).DialContext,
		}
		c := &http.Client{Transport: tr, Timeout: 10 * time.Second}
		resp, err := c.Get("https://" + addr + "/tls")
		if err != nil {
			t.Fatalf("%s: %v", tc.sni, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.ProtoMajor != 2 || resp.TLS.PeerCertificates[0].DNSNames[0] != strings.TrimPrefix(tc.sni, "www.") {
			t.Fatalf("%s: proto %d cert %v", tc.sni, resp.ProtoMajor, resp.TLS.PeerCertificates[0].DNSNames)
		}
		if resp.TLS.CurveID != tls.X25519MLKEM768 {
			t.Errorf("%s: key exchange %v, want the hybrid post-quantum X25519MLKEM768", tc.sni, resp.TLS.CurveID)
		}
		if !strings.HasPrefix(string(b), "https ") {
			t.Fatalf("%s: origin saw %q", tc.sni, b)
		}
	}
}

func TestProxyProtocolGivesTheRealClientAddress(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Header.Get("X-Forwarded-For"))
	}))
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    proxy_protocol: true
    proxy_protocol_from: [127.0.0.1]
`+oneRoute, "{{ORIGIN}}", origin)
	addr := strings.TrimPrefix(e.URL, "http://")
	for name, header := range map[string][]byte{
		"v1": []byte("PROXY TCP4 203.0.113.7 10.0.0.1 51000 80\r\n"),
		"v2": proxyV2(t, [4]byte{198, 51, 100, 9}),
	} {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write(header)
		io.WriteString(conn, "GET /who HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		conn.Close()
		want := map[string]string{"v1": "203.0.113.7", "v2": "198.51.100.9"}[name]
		if string(b) != want {
			t.Errorf("%s: origin saw client %q, want %q", name, b, want)
		}
	}
	// Without the header, the connection is refused service.
	if got := rawStatusAt(t, addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); got == 200 {
		t.Error("a connection without a PROXY header was served")
	}
}

// proxyV2 builds a PROXY v2 header for a TCP/IPv4 client.
func proxyV2(t *testing.T, src [4]byte) []byte {
	b := []byte("\r\n\r\n\x00\r\nQUIT\n")
	b = append(b, 0x21, 0x11, 0, 12)
	b = append(b, src[:]...)
	b = append(b, 10, 0, 0, 1)
	b = binary.BigEndian.AppendUint16(b, 51000)
	b = binary.BigEndian.AppendUint16(b, 80)
	return b
}

// rawStatusAt sends raw bytes and returns the response status, or 0 when
// the connection closes without one.
func rawStatusAt(t *testing.T, addr, raw string) int {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(8 * time.Second))
	io.WriteString(conn, raw)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}
