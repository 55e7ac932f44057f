package h3

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"io"
	"math/big"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), DNSNames: []string{"a.example"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, pool
}

// retryCounter relays UDP to addr for one client and counts the Retry
// packets the server sends back (long header, type 3).
func retryCounter(t *testing.T, addr net.Addr) (string, *atomic.Int64) {
	front, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	back, err := net.DialUDP("udp", nil, addr.(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { front.Close(); back.Close() })
	var retries atomic.Int64
	var client atomic.Pointer[net.UDPAddr]
	go func() {
		b := make([]byte, 65536)
		for {
			n, from, err := front.ReadFromUDP(b)
			if err != nil {
				return
			}
			client.Store(from)
			back.Write(b[:n])
		}
	}()
	go func() {
		b := make([]byte, 65536)
		for {
			n, err := back.Read(b)
			if err != nil {
				return
			}
			if b[0]&0x80 != 0 && b[0]>>4&0x3 == 3 {
				retries.Add(1)
			}
			front.WriteToUDP(b[:n], client.Load())
		}
	}()
	return front.LocalAddr().String(), &retries
}

// Past RetryAbove open connections a new client must prove its address
// with a Retry (RFC 9000 section 8.1.2) before the server spends a
// handshake on it; below it, none does.
func TestRetryPastTheConnectionThreshold(t *testing.T) {
	cert, pool := selfSigned(t)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ok := func(ctx context.Context, sess proxy.Session, _ **proxy.Ctx) error {
		resp := &httphead.Response{Status: 200, ContentLength: 2}
		sess.WriteHead(resp)
		sess.Write([]byte("ok"))
		return sess.Finish(nil)
	}
	s, err := Listen(pc, &tls.Config{Certificates: []tls.Certificate{cert}}, Limits{RetryAbove: 1}, ok)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Shutdown(context.Background())
	get := func(addr string) {
		t.Helper()
		tr := &http3.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "a.example"}}
		t.Cleanup(func() { tr.Close() })
		resp, err := (&http.Client{Transport: tr, Timeout: 5 * time.Second}).Get("https://" + addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if string(b) != "ok" {
			t.Fatalf("body %q", b)
		}
	}
	first, firstRetries := retryCounter(t, pc.LocalAddr())
	get(first) // stays open: the threshold is reached
	second, secondRetries := retryCounter(t, pc.LocalAddr())
	get(second)
	// (A client may send its Initial twice before the Retry arrives,
	// and get a Retry for each.)
	if firstRetries.Load() != 0 || secondRetries.Load() == 0 {
		t.Fatalf("Retry packets: %d for the first client, %d for the second; want none, then some", firstRetries.Load(), secondRetries.Load())
	}
}
