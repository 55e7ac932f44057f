package node

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/h3"
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
			if lc.HTTP3 {
				s3, err := n.listenH3(l, tc, cfg)
				if err != nil {
					return fmt.Errorf("listener %s: %w", lc.Addr, err)
				}
				sl.AltSvc = s3.AltSvc
			}
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

// listenH3 serves HTTP/3 on the UDP port of the TCP listener l.
func (n *Node) listenH3(l net.Listener, tc *tls.Config, cfg *config.Config) (*h3.Server, error) {
	pc, err := net.ListenPacket("udp", l.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("http3: %w", err)
	}
	lim := h3.Limits{
		MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes),
		IdleTimeout:    cfg.Timeouts.Idle,
		Admit:          n.srv.AdmitConn,
		Allow0RTT:      slices.ContainsFunc(cfg.Routes, func(r config.Route) bool { return r.EarlyData }),
		Fingerprint: func(h *tls.ClientHelloInfo) string {
			var b [36]byte
			return string(guard.AppendJA4(b[:0], h, guard.OverQUIC))
		},
	}
	s, err := h3.Listen(pc, tc, lim, n.srv.ServeStream)
	if err != nil {
		pc.Close()
		return nil, err
	}
	n.h3 = append(n.h3, s)
	return s, nil
}
