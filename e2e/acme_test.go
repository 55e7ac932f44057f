package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/core"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"github.com/miekg/dns"
	"golang.org/x/crypto/ocsp"

	"github.com/outpost-edge/outpost/acme"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// loopbackDNS answers every A query with 127.0.0.1, over TCP as the CA's
// validation authority asks, so that it reaches the node for any name.
func loopbackDNS(t *testing.T) string {
	t.Helper()
	l := listen(t)
	srv := &dns.Server{Listener: l, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		for _, question := range q.Question {
			if question.Qtype == dns.TypeA {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: question.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
					A: net.IPv4(127, 0, 0, 1)})
			}
		}
		w.WriteMsg(m)
	})}
	go srv.ActivateAndServe()
	t.Cleanup(func() { srv.Shutdown() })
	return l.Addr().String()
}

// pebble is an in-process ACME CA whose validation authority checks
// HTTP-01 on httpPort and TLS-ALPN-01 on tlsPort.
type pebble struct {
	dir    string // the ACME directory URL
	roots  string // PEM file of the CA's HTTPS certificate
	orders atomic.Int64
}

func startPebble(t *testing.T, httpPort, tlsPort int, validity time.Duration) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0") // every order is validated again
	logger := log.New(io.Discard, "", 0)
	if testing.Verbose() {
		logger = log.New(os.Stderr, "pebble ", log.Lmicroseconds)
	}
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "test", ValidityPeriod: uint64(validity / time.Second)}}
	ocspLn := listen(t)
	authority := ca.New(logger, store, "http://"+ocspLn.Addr().String()+"/", "rsa", 0, 1, profiles) // rsa: the OCSP responder signs with its keys
	ocspSrv := &http.Server{Handler: ocspResponder(t, authority)}
	go ocspSrv.Serve(ocspLn)
	t.Cleanup(func() { ocspSrv.Close() })
	validator := va.New(logger, httpPort, tlsPort, false, loopbackDNS(t), store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	p := &pebble{}
	h := front.Handler()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		h.ServeHTTP(w, r)
	}))
	srv.StartTLS()
	t.Cleanup(srv.Close)
	p.dir = srv.URL + wfe.DirectoryPath
	p.roots = filepath.Join(t.TempDir(), "pebble-roots.pem")
	if err := os.WriteFile(p.roots, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// ocspResponder answers OCSP requests (RFC 6960) for the CA's
// certificates: good, for an hour, signed by the issuer named in the
// request.
func ocspResponder(t *testing.T, authority *ca.CAImpl) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		der, _ := io.ReadAll(r.Body)
		if r.Method == http.MethodGet {
			der, _ = base64.StdEncoding.DecodeString(strings.TrimPrefix(r.URL.Path, "/"))
		}
		req, err := ocsp.ParseRequest(der)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for i, c := range []*core.Certificate{authority.GetIntermediateCert(0), authority.GetRootCert(0)} {
			h := req.HashAlgorithm.New()
			h.Write(c.Cert.RawSubject)
			if !bytes.Equal(h.Sum(nil), req.IssuerNameHash) {
				continue
			}
			key := authority.GetIntermediateKey(0)
			if i == 1 {
				key = authority.GetRootKey(0)
			}
			now := time.Now()
			resp, err := ocsp.CreateResponse(c.Cert, c.Cert, ocsp.Response{Status: ocsp.Good, SerialNumber: req.SerialNumber,
				ThisUpdate: now.Add(-time.Minute), NextUpdate: now.Add(time.Hour)}, key)
			if err != nil {
				t.Error(err)
				return
			}
			w.Header().Set("Content-Type", "application/ocsp-response")
			w.Write(resp)
			return
		}
		http.Error(w, "unknown issuer", http.StatusNotFound)
	})
}

// acmeNode starts a node whose first listener gets its certificates from
// the CA and whose second is redirect_https, on the listeners given. It
// returns the ACME storage directory.
func acmeNode(t *testing.T, p *pebble, tlsLn, httpLn net.Listener, origin, acmeYAML string) string {
	t.Helper()
	storage := filepath.Join(t.TempDir(), "acme")
	text := fmt.Sprintf(`
listeners:
  - addr: 127.0.0.1:0
    tls:
      acme:
        ca: %q
        ca_roots: %q
        storage: %q
%s
  - addr: 127.0.0.1:0
    redirect_https: true
admin: {addr: ""}
upstreams:
  origin: {servers: [{addr: %q}]}
routes:
  - upstream: origin
log: {access: "off"}
`, p.dir, p.roots, storage, acmeYAML, origin)
	cfg, err := config.Parse("acme.yaml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, node.Options{Listeners: []net.Listener{tlsLn, httpLn}, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return storage
}

func testLog(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.DiscardHandler)
}

// listenPort returns a loopback listener and its port.
func listenPort(t *testing.T) (net.Listener, int) {
	l := listen(t)
	return l, l.Addr().(*net.TCPAddr).Port
}

// leafFor makes a handshake for name and returns the certificate served.
func leafFor(addr, name string) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// waitLeaf waits until the node serves a certificate for name issued by
// the CA.
func waitLeaf(t *testing.T, addr, name string) *x509.Certificate {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		leaf, err := leafFor(addr, name)
		if err == nil {
			if !strings.Contains(leaf.Issuer.CommonName, "Pebble") || leaf.VerifyHostname(name) != nil {
				t.Fatalf("certificate for %s: issuer %q, names %v", name, leaf.Issuer.CommonName, leaf.DNSNames)
			}
			return leaf
		}
		if time.Now().After(deadline) {
			t.Fatalf("no certificate for %s: %v", name, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stapleFor returns the OCSP response stapled to a handshake for name
// (RFC 6066 section 8), nil when there is none.
func stapleFor(t *testing.T, addr, name string) *ocsp.Response {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: name, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	st := c.ConnectionState()
	if len(st.OCSPResponse) == 0 {
		return nil
	}
	resp, err := ocsp.ParseResponseForCert(st.OCSPResponse, st.PeerCertificates[0], st.PeerCertificates[1])
	if err != nil {
		t.Fatalf("staple: %v", err)
	}
	return resp
}

// getVia sends GET https://name/ to addr and returns the body.
func getVia(t *testing.T, addr, name string) string {
	t.Helper()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, addr)
		},
	}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + name + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func helloOrigin(t *testing.T) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "origin says hi")
	}))
}

// RFC 8555 section 8.3: the certificate is obtained over HTTP-01, answered
// by the redirect_https listener, which redirects everything else.
func TestACMEIssuesOverHTTP01AndRedirectsTheRest(t *testing.T) {
	tlsLn, tlsPort := listenPort(t)
	httpLn, httpPort := listenPort(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	storage := acmeNode(t, p, tlsLn, httpLn, helloOrigin(t), "        domains: [www.outpost.test]\n        challenges: [http-01]")
	addr := tlsLn.Addr().String()
	waitLeaf(t, addr, "www.outpost.test")
	keys := 0
	filepath.WalkDir(storage, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := d.Info()
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s is open to other users: %v", path, fi.Mode())
		}
		if strings.HasSuffix(path, ".key") {
			keys++
		}
		return nil
	})
	if keys < 2 { // the account's and the certificate's
		t.Errorf("%d private keys in %s", keys, storage)
	}
	if got := getVia(t, addr, "www.outpost.test"); got != "origin says hi" {
		t.Fatalf("through the node: %q", got)
	}
	staple := stapleFor(t, addr, "www.outpost.test")
	if staple == nil || staple.Status != ocsp.Good {
		t.Errorf("no good OCSP staple: %+v", staple)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("GET", "http://"+httpLn.Addr().String()+"/a/b?c=d", nil)
	req.Host = "www.outpost.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := fmt.Sprintf("https://www.outpost.test:%d/a/b?c=d", tlsPort)
	if resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("port 80 answered %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// RFC 8737: the certificate is obtained over TLS-ALPN-01, answered by the
// TLS listener itself.
func TestACMEIssuesOverTLSALPN01(t *testing.T) {
	tlsLn, tlsPort := listenPort(t)
	httpLn, httpPort := listenPort(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	acmeNode(t, p, tlsLn, httpLn, helloOrigin(t), "        domains: [alpn.outpost.test]\n        challenges: [tls-alpn-01]")
	addr := tlsLn.Addr().String()
	waitLeaf(t, addr, "alpn.outpost.test")
	if got := getVia(t, addr, "alpn.outpost.test"); got != "origin says hi" {
		t.Fatalf("through the node: %q", got)
	}
}

// On demand, an allowed name gets a certificate at its first handshake;
// a name that is not allowed fails its handshake and costs no order.
func TestACMEOnDemandOnlyForAllowedNames(t *testing.T) {
	tlsLn, tlsPort := listenPort(t)
	httpLn, httpPort := listenPort(t)
	p := startPebble(t, httpPort, tlsPort, 0)
	asked := make(chan string, 10)
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := r.URL.Query().Get("domain")
		asked <- name
		if name != "asked.outpost.test" {
			http.Error(w, "no", http.StatusForbidden)
		}
	}))
	defer ask.Close()
	acmeNode(t, p, tlsLn, httpLn, helloOrigin(t), fmt.Sprintf("        on_demand: {hosts: ['*.shop.outpost.test'], ask: %q}", ask.URL))
	addr := tlsLn.Addr().String()
	for _, name := range []string{"a.shop.outpost.test", "asked.outpost.test"} {
		waitLeaf(t, addr, name)
	}
	if got := p.orders.Load(); got != 2 {
		t.Fatalf("%d orders for two names", got)
	}
	for _, name := range []string{"evil.outpost.test", "a.b.shop.outpost.test", "shop.outpost.test"} {
		if _, err := leafFor(addr, name); err == nil {
			t.Errorf("handshake for %s succeeded", name)
		}
	}
	if got := p.orders.Load(); got != 2 {
		t.Fatalf("names not allowed caused %d more orders", got-2)
	}
	if len(asked) == 0 {
		t.Error("the ask URL was never asked")
	}
}

// A short-lived certificate is renewed in the background while the node
// keeps serving: no handshake or request fails during the renewal.
func TestACMERenewsWhileServing(t *testing.T) {
	defer func(d time.Duration) { acme.RenewCheckInterval = d }(acme.RenewCheckInterval)
	acme.RenewCheckInterval = 500 * time.Millisecond
	tlsLn, tlsPort := listenPort(t)
	httpLn, httpPort := listenPort(t)
	p := startPebble(t, httpPort, tlsPort, 15*time.Second)
	acmeNode(t, p, tlsLn, httpLn, helloOrigin(t), "        domains: [renew.outpost.test]")
	addr := tlsLn.Addr().String()
	first := waitLeaf(t, addr, "renew.outpost.test")
	deadline := time.Now().Add(30 * time.Second)
	for requests := 0; ; requests++ {
		if got := getVia(t, addr, "renew.outpost.test"); got != "origin says hi" {
			t.Fatalf("request %d: %q", requests, got)
		}
		leaf, err := leafFor(addr, "renew.outpost.test")
		if err != nil {
			t.Fatalf("handshake %d: %v", requests, err)
		}
		if leaf.SerialNumber.Cmp(first.SerialNumber) != 0 {
			if !leaf.NotAfter.After(first.NotAfter) {
				t.Fatalf("new certificate expires %v, the first %v", leaf.NotAfter, first.NotAfter)
			}
			t.Logf("renewed after %d requests; %d orders", requests, p.orders.Load())
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not renewed; the first certificate expires %v", first.NotAfter)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
