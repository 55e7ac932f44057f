// Package acme obtains and renews a listener's certificates from an ACME
// certificate authority (RFC 8555), with certmagic doing the protocol:
// issuance for the configured names at start, on-demand issuance at the
// first handshake for names an allow-list or an ask URL permits, renewal
// and OCSP stapling in the background, and storage on disk.
//
// Challenges are answered where the node already listens: TLS-ALPN-01
// (RFC 8737) in the listener's handshakes, HTTP-01 by a listener with
// redirect_https through HandleHTTPChallenge. When the challenge port is
// not one of the node's, certmagic binds it for the time of the challenge.
// Nodes sharing the storage directory share certificates and answer each
// other's challenges.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/outpost-edge/outpost/config"
)

// RenewCheckInterval is how often certificates are checked for renewal
// (OCSP staples are refreshed hourly). It is a variable so that tests
// with short-lived certificates can shorten it before New.
var RenewCheckInterval = certmagic.DefaultRenewCheckInterval

// ALPN is the protocol name of the TLS-ALPN-01 challenge (RFC 8737
// section 6.2); a connection that negotiates it carries no HTTP.
const ALPN = "acme-tls/1"

// Options configure a Manager.
type Options struct {
	// ACME is the listener's provisioned tls.acme.
	ACME *config.ACME
	// Storage is the directory for the account, certificates and keys;
	// ACME.Storage when set, else the node's choice.
	Storage string
	// HTTPPort and TLSPort are the ports the CA connects to for the
	// HTTP-01 and TLS-ALPN-01 challenges; zero means 80 and 443.
	HTTPPort, TLSPort int
	// Log receives issuance, renewal and failure events.
	Log *slog.Logger
}

// Manager holds one listener's automatically managed certificates.
type Manager struct {
	magic   *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	cache   *certmagic.Cache
	domains []string
	log     *slog.Logger
}

// New prepares a Manager; Start begins obtaining certificates.
func New(o Options) (*Manager, error) {
	a := o.ACME
	m := &Manager{domains: slices.Clone(a.Domains), log: o.Log}
	var roots *x509.CertPool
	if a.CARoots != "" {
		pem, err := os.ReadFile(a.CARoots)
		if err != nil {
			return nil, fmt.Errorf("acme: ca_roots: %w", err)
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("acme: ca_roots %s holds no PEM certificate", a.CARoots)
		}
	}
	if err := privateDir(o.Storage); err != nil {
		return nil, fmt.Errorf("acme: storage: %w", err)
	}
	nop := zap.NewNop() // what matters reaches Log through events
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return m.magic, nil },
		RenewCheckInterval: RenewCheckInterval,
		Logger:             nop,
	})
	cfg := certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Storage},
		OnEvent: m.event,
		Logger:  nop,
	}
	if len(m.domains) > 0 {
		cfg.DefaultServerName = m.domains[0] // for clients that send no SNI
	}
	if a.OnDemand != nil {
		cfg.OnDemand = &certmagic.OnDemandConfig{DecisionFunc: allow(a.Domains, a.OnDemand)}
	}
	m.magic = certmagic.New(m.cache, cfg)
	m.issuer = certmagic.NewACMEIssuer(m.magic, certmagic.ACMEIssuer{
		CA:                      a.CA,
		Email:                   a.Email,
		Agreed:                  true,
		DisableHTTPChallenge:    !slices.Contains(a.Challenges, config.ChallengeHTTP01),
		DisableTLSALPNChallenge: !slices.Contains(a.Challenges, config.ChallengeTLSALPN01),
		AltHTTPPort:             o.HTTPPort,
		AltTLSALPNPort:          o.TLSPort,
		TrustedRoots:            roots,
		Logger:                  nop,
	})
	m.magic.Issuers = []certmagic.Issuer{m.issuer}
	return m, nil
}

// Start obtains (or loads from storage) the certificates of the
// configured domains in the background, and keeps them renewed until
// Close. Call it once the listeners answering challenges are open.
func (m *Manager) Start(ctx context.Context) error {
	if len(m.domains) == 0 {
		return nil
	}
	if err := m.magic.ManageAsync(ctx, m.domains); err != nil {
		return fmt.Errorf("acme: %w", err)
	}
	return nil
}

// TLSConfig returns the listener's TLS configuration: h2 and http/1.1
// by ALPN, plus the TLS-ALPN-01 challenge protocol.
func (m *Manager) TLSConfig(minVersion uint16) *tls.Config {
	return &tls.Config{
		GetCertificate: m.magic.GetCertificate,
		MinVersion:     max(minVersion, tls.VersionTLS12),
		NextProtos:     []string{"h2", "http/1.1", ALPN},
	}
}

// HandleHTTPChallenge answers an HTTP-01 challenge request started by
// this node or another sharing its storage, and reports whether it did.
func (m *Manager) HandleHTTPChallenge(w http.ResponseWriter, r *http.Request) bool {
	return m.issuer.HandleHTTPChallenge(w, r)
}

// Close stops renewals.
func (m *Manager) Close() { m.cache.Stop() }

// event logs what certmagic did.
func (m *Manager) event(_ context.Context, event string, data map[string]any) error {
	switch event {
	case "cert_obtained":
		m.log.Info("acme: certificate obtained", "name", data["identifier"], "renewal", data["renewal"], "issuer", data["issuer"])
	case "cert_failed":
		m.log.Warn("acme: certificate not obtained", "name", data["identifier"], "renewal", data["renewal"], "error", data["error"])
	case "cert_ocsp_revoked":
		m.log.Error("acme: certificate revoked, replacing it", "name", data["identifier"])
	}
	return nil
}

// privateDir makes dir (0700) if missing and refuses one that other
// users may read or write: it holds private keys.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s is open to other users (mode %#o): it holds private keys; chmod 700 it", dir, fi.Mode().Perm())
	}
	return nil
}

// askTimeout bounds the on-demand ask request, and maxAsks the asks in
// flight: a flood of handshakes for made-up names is refused beyond it
// rather than passed on to the ask endpoint.
const (
	askTimeout = 10 * time.Second
	maxAsks    = 16
)

// allow decides whether a name may get a certificate at its first
// handshake: one of domains, a name of od.Hosts, or one the ask URL
// approves. Every other name gets none, and causes no request to the CA.
func allow(domains []string, od *config.ACMEOnDemand) func(context.Context, string) error {
	client := &http.Client{Timeout: askTimeout}
	asks := make(chan struct{}, maxAsks)
	return func(ctx context.Context, name string) error {
		name = strings.ToLower(name)
		if slices.Contains(domains, name) || slices.ContainsFunc(od.Hosts, func(h string) bool { return hostMatch(h, name) }) {
			return nil
		}
		if od.Ask == "" {
			return fmt.Errorf("acme: %q is not allowed on demand", name)
		}
		select {
		case asks <- struct{}{}:
			defer func() { <-asks }()
		default:
			return fmt.Errorf("acme: %q refused: %d on-demand asks already in flight", name, maxAsks)
		}
		u, err := url.Parse(od.Ask)
		if err != nil {
			return err
		}
		q := u.Query()
		q.Set("domain", name)
		u.RawQuery = q.Encode()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err != nil {
			return fmt.Errorf("acme: on-demand ask: %w", err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			return errors.New("acme: on-demand ask refused " + name + ": " + resp.Status)
		}
		return nil
	}
}

// hostMatch matches a name against a host pattern, where "*.example.org"
// stands for exactly one label under example.org.
func hostMatch(pattern, name string) bool {
	if rest, ok := strings.CutPrefix(pattern, "*."); ok {
		label, parent, found := strings.Cut(name, ".")
		return found && label != "" && parent == rest
	}
	return pattern == name
}
