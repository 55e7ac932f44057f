package node

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/proxyproto"
	"github.com/outpost-edge/outpost/server"
)

// listen opens (or adopts) the public listeners and starts serving them.
// All are open before any is served, so that the ACME managers know the
// ports their challenges are answered on.
func (n *Node) listen(cfg *config.Config, opts Options) error {
	for i, lc := range cfg.Listeners {
		var l net.Listener
		if i < len(opts.Listeners) {
			l = opts.Listeners[i]
		} else {
			var err error
			if l, err = (&net.ListenConfig{}).Listen(context.Background(), "tcp", lc.Addr); err != nil {
				return fmt.Errorf("listen %s: %w", lc.Addr, err)
			}
		}
		n.lns = append(n.lns, l)
	}
	if err := n.newACME(cfg); err != nil {
		return err
	}
	for i, lc := range cfg.Listeners {
		l := n.lns[i]
		if lc.RedirectHTTPS {
			n.serveRedirect(cfg, l)
			continue
		}
		sl := server.Listener{H2C: lc.H2C}
		if lc.TLS != nil {
			tc, err := n.tlsConfig(i, lc.TLS)
			if err != nil {
				return fmt.Errorf("listener %s: %w", lc.Addr, err)
			}
			sl.TLS = tc
			sl.Fingerprint = guard.JA4
		}
		if lc.ProxyProtocol {
			l = proxyproto.Wrap(l, lc.ProxyProtocolFrom, 5*time.Second)
		}
		go func() {
			if err := n.srv.Serve(l, sl); err != nil {
				n.errc <- err
			}
		}()
	}
	return nil
}
