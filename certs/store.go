// Package certs holds the certificates Outpost terminates TLS with: a Store
// loaded from certificate and key files, SNI selection by the names in each
// certificate, and hot reload when the files change. It also builds the
// tls.Config for listeners (ServerConfig) and for upstream connections
// (ClientConfig). It knows nothing of HTTP.
//
// Selection for a ClientHello's server name, in order:
//
//	exact DNS name in a certificate     www.example.org
//	wildcard one label up               *.example.org
//	the first pair in the list          (also used when there is no SNI)
//
// When several certificates carry the same name (an ECDSA and an RSA one),
// the first the client supports wins.
//
// Reload swaps the whole set at once and only when every file parses, so a
// half-written or broken file keeps the old certificates in service. Existing
// connections are never touched: a certificate is only consulted during a
// handshake.
package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoCertificates means a Store was configured with no pairs.
var ErrNoCertificates = errors.New("certs: no certificate configured")

// Pair names a PEM certificate chain file and its private key file.
type Pair struct {
	CertFile string `yaml:"cert"`
	KeyFile  string `yaml:"key"`
}

// Config configures a Store. The zero value of each field is usable except
// Pairs, which needs at least one entry.
type Config struct {
	// Pairs are the certificates to serve; the first is the default.
	Pairs []Pair
	// PollInterval is how often the files are checked for changes.
	// Zero means 5 seconds; negative disables polling (call Reload).
	PollInterval time.Duration
	// Logger receives reload results. Nil means slog.Default().
	Logger *slog.Logger
}

// DefaultPollInterval is the poll interval when Config.PollInterval is zero.
const DefaultPollInterval = 5 * time.Second

// Store serves certificates by SNI and reloads them when their files change.
// It is safe for concurrent use; GetCertificate takes no lock.
type Store struct {
	pairs []Pair
	log   *slog.Logger

	set atomic.Pointer[certSet]

	// reloadMu serialises reloads (the poller and Reload callers);
	// it guards stamps, the file states the current set was loaded from.
	reloadMu sync.Mutex
	stamps   []os.FileInfo

	cancel context.CancelFunc
	done   chan struct{} // closed when the poller exits
}

// certSet is one immutable generation of certificates.
type certSet struct {
	all      []*tls.Certificate            // in pair order; all[0] is the default
	exact    map[string][]*tls.Certificate // lower-case DNS name
	wildcard map[string][]*tls.Certificate // "example.org" for "*.example.org"
}

// New loads every pair and, unless polling is disabled, starts a goroutine
// that reloads them when their files change. The goroutine stops when ctx
// ends or Close is called.
func New(ctx context.Context, cfg Config) (*Store, error) {
	if len(cfg.Pairs) == 0 {
		return nil, ErrNoCertificates
	}
	s := &Store{
		pairs: append([]Pair(nil), cfg.Pairs...),
		log:   cfg.Logger,
		done:  make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if _, err := s.reload(true); err != nil {
		return nil, err
	}
	interval := cfg.PollInterval
	if interval == 0 {
		interval = DefaultPollInterval
	}
	if interval < 0 {
		s.cancel = func() {}
		close(s.done)
		return s, nil
	}
	ctx, s.cancel = context.WithCancel(ctx)
	go s.poll(ctx, interval)
	return s, nil
}

// Close stops the poller and waits for it to exit. Certificates stay
// available to GetCertificate.
func (s *Store) Close() error {
	s.cancel()
	<-s.done
	return nil
}

// GetCertificate picks the certificate for a handshake; it is meant for
// tls.Config.GetCertificate.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return s.set.Load().pick(hello), nil
}

// Leaves returns the leaf certificates now in service, in the order of the
// configured pairs (for status pages and expiry metrics).
func (s *Store) Leaves() []*x509.Certificate {
	set := s.set.Load()
	leaves := make([]*x509.Certificate, len(set.all))
	for i, c := range set.all {
		leaves[i] = c.Leaf
	}
	return leaves
}

// Reload reads all files now and swaps them in if they all parse, whether or
// not they changed. It returns the parse error otherwise; the old set stays.
func (s *Store) Reload() error {
	_, err := s.reload(true)
	return err
}

// poll is owned by the Store; it stops when ctx ends and recovers panics so a
// bug here can never take the process down.
func (s *Store) poll(ctx context.Context, interval time.Duration) {
	defer close(s.done)
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("certs: poller stopped by panic; certificates no longer reload", "panic", r)
		}
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	var lastErr string // the failure last logged, so a broken file is reported once
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		swapped, err := s.reload(false)
		switch {
		case err != nil && err.Error() != lastErr:
			lastErr = err.Error()
			s.log.Error("certs: reload failed, keeping the current certificates", "err", err)
		case swapped:
			lastErr = ""
			s.log.Info("certs: reloaded certificates", "pairs", len(s.pairs))
		}
	}
}

// reload loads the files if force is set or any of them changed since the
// last successful load, and swaps the set in when all parse. A failed attempt
// leaves the stamps alone so the next poll tries again: the fix for a broken
// file may not change its size or (coarse) modification time.
func (s *Store) reload(force bool) (swapped bool, err error) {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	stamps, err := s.stat()
	if err != nil {
		return false, err
	}
	if !force && equalStamps(stamps, s.stamps) {
		return false, nil
	}
	set, err := load(s.pairs)
	if err != nil {
		return false, err
	}
	s.stamps = stamps
	s.set.Store(set)
	s.warnValidity(set, time.Now())
	return true, nil
}

// warnValidity logs certificates that are outside their validity period:
// they are still served (refusing them would not help the clients), but
// someone should know.
func (s *Store) warnValidity(set *certSet, now time.Time) {
	for i, c := range set.all {
		if now.After(c.Leaf.NotAfter) || now.Before(c.Leaf.NotBefore) {
			s.log.Warn("certs: certificate is outside its validity period",
				"file", s.pairs[i].CertFile, "not_before", c.Leaf.NotBefore, "not_after", c.Leaf.NotAfter)
		}
	}
}

// stat reads the stamps of all files; it runs before reading them so that a
// write racing with the read shows up as a change on the next poll.
func (s *Store) stat() ([]os.FileInfo, error) {
	stamps := make([]os.FileInfo, 0, 2*len(s.pairs))
	for _, p := range s.pairs {
		for _, name := range [...]string{p.CertFile, p.KeyFile} {
			fi, err := os.Stat(name)
			if err != nil {
				return nil, fmt.Errorf("certs: %w", err)
			}
			stamps = append(stamps, fi)
		}
	}
	return stamps, nil
}

// equalStamps reports whether no file changed: same file (a rename over it
// makes a new one), same size, same modification time.
func equalStamps(a, b []os.FileInfo) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !os.SameFile(a[i], b[i]) || a[i].Size() != b[i].Size() || !a[i].ModTime().Equal(b[i].ModTime()) {
			return false
		}
	}
	return true
}

// load parses every pair into a new set.
func load(pairs []Pair) (*certSet, error) {
	set := &certSet{
		exact:    make(map[string][]*tls.Certificate),
		wildcard: make(map[string][]*tls.Certificate),
	}
	for _, p := range pairs {
		cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("certs: loading %s with key %s: %w", p.CertFile, p.KeyFile, err)
		}
		set.all = append(set.all, &cert)
		for _, name := range cert.Leaf.DNSNames {
			name = strings.ToLower(strings.TrimSuffix(name, "."))
			if base, ok := strings.CutPrefix(name, "*."); ok {
				set.wildcard[base] = append(set.wildcard[base], &cert)
			} else {
				set.exact[name] = append(set.exact[name], &cert)
			}
		}
	}
	return set, nil
}

// pick returns the best certificate for hello; see the package doc.
func (set *certSet) pick(hello *tls.ClientHelloInfo) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(hello.ServerName, "."))
	if name == "" {
		return set.all[0]
	}
	if c := supported(hello, set.exact[name]); c != nil {
		return c
	}
	if _, parent, ok := strings.Cut(name, "."); ok {
		if c := supported(hello, set.wildcard[parent]); c != nil {
			return c
		}
	}
	return set.all[0]
}

// supported returns the first of certs the client can use, or the first of
// them when it can use none (the handshake will then fail with a clear alert).
func supported(hello *tls.ClientHelloInfo, certs []*tls.Certificate) *tls.Certificate {
	switch len(certs) {
	case 0:
		return nil
	case 1:
		return certs[0]
	}
	for _, c := range certs {
		if hello.SupportsCertificate(c) == nil {
			return c
		}
	}
	return certs[0]
}
