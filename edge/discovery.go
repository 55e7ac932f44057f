package edge

import (
	"context"
	"net"
	"net/netip"
	"strconv"

	"github.com/outpost-edge/outpost/upstream"
)

// startDiscovery re-resolves the upstream's DNS names when the config asks
// for it: servers given by name, and an SRV name.
func (b *backend) startDiscovery(ctx context.Context, s *Shared) {
	cfg := b.settings().cfg
	if cfg.DNS == nil {
		return
	}
	d := &upstream.Discovery{Interval: cfg.DNS.Refresh, Log: s.Log}
	for _, sv := range cfg.Servers {
		host, port, err := net.SplitHostPort(sv.Addr)
		if _, perr := netip.ParseAddr(host); err != nil || perr == nil {
			d.Static = append(d.Static, &upstream.Server{Addr: sv.Addr, Weight: sv.Weight, Backup: sv.Backup})
			continue
		}
		p, _ := strconv.Atoi(port)
		d.Names = append(d.Names, upstream.Name{Host: host, Port: p, Weight: sv.Weight, Backup: sv.Backup})
	}
	if cfg.DNS.SRV != "" {
		d.Names = append(d.Names, upstream.Name{Host: cfg.DNS.SRV, SRV: true})
	}
	d.Changed = func(*upstream.Backend) { b.syncHealthTargets() }
	go d.Run(ctx, b.b)
}
