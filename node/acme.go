package node

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/outpost-edge/outpost/acme"
	"github.com/outpost-edge/outpost/config"
)

// newACME prepares a certificate manager for each listener with
// tls.acme, once every listener is open: the challenge ports are those of
// the first redirect_https listener (HTTP-01) and of the listener itself
// (TLS-ALPN-01).
func (n *Node) newACME(cfg *config.Config) error {
	httpPort := 0
	for i, lc := range cfg.Listeners {
		if lc.RedirectHTTPS {
			httpPort = n.lns[i].Addr().(*net.TCPAddr).Port
			break
		}
	}
	n.acme = make([]*acme.Manager, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		if lc.TLS == nil || lc.TLS.ACME == nil {
			continue
		}
		storage := lc.TLS.ACME.Storage
		if storage == "" {
			dir, err := StateDir()
			if err != nil {
				return errors.New("tls.acme: " + err.Error() + " (or set tls.acme.storage)")
			}
			storage = filepath.Join(dir, "acme")
		}
		m, err := acme.New(acme.Options{ACME: lc.TLS.ACME, Storage: storage, Log: n.Log,
			HTTPPort: httpPort, TLSPort: n.lns[i].Addr().(*net.TCPAddr).Port})
		if err != nil {
			return err
		}
		n.acme[i] = m
	}
	return nil
}

// tlsConfig returns the TLS configuration of listener i.
func (n *Node) tlsConfig(i int, t *config.ListenerTLS) (*tls.Config, error) {
	if m := n.acme[i]; m != nil {
		return m.TLSConfig(uint16(t.MinVersion)), nil
	}
	return n.shared.TLSConfig(t)
}

// startACME starts obtaining certificates, once the listeners serve.
func (n *Node) startACME() error {
	var ctx context.Context
	ctx, n.stopACME = context.WithCancel(context.Background())
	for _, m := range n.acme {
		if m != nil {
			if err := m.Start(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// closeACME stops the redirect listeners and the ACME jobs; closeState
// stops the renewals.
func (n *Node) closeACME(ctx context.Context) {
	for _, srv := range n.redirects {
		_ = srv.Shutdown(ctx)
	}
	if n.stopACME != nil {
		n.stopACME()
	}
}

// serveRedirect serves a redirect_https listener: the ACME HTTP-01
// challenges of the node's managers, and a 308 to https for the rest.
func (n *Node) serveRedirect(cfg *config.Config, l net.Listener) {
	port := ""
	for i, lc := range cfg.Listeners {
		if lc.TLS != nil {
			if p := n.lns[i].Addr().(*net.TCPAddr).Port; p != 443 {
				port = ":" + strconv.Itoa(p)
			}
			break
		}
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for _, m := range n.acme {
			if m != nil && m.HandleHTTPChallenge(w, r) {
				return
			}
		}
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if host == "" {
			http.Error(w, "a Host is required", http.StatusBadRequest)
			return
		}
		http.Redirect(w, r, "https://"+host+port+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
	t := cfg.Timeouts
	srv := &http.Server{Handler: h, ReadHeaderTimeout: t.Header, IdleTimeout: t.Idle, WriteTimeout: t.Write,
		MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes)}
	n.redirects = append(n.redirects, srv)
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			n.errc <- err
		}
	}()
}
