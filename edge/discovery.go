package edge

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/upstream"
)

// startDiscovery re-resolves the upstream's DNS names when the config asks
// for it: servers given by name, and an SRV name.
func (b *backend) startDiscovery(ctx context.Context, s *Shared) {
	if b.cfg.DNS == nil {
		return
	}
	d := &upstream.Discovery{Interval: b.cfg.DNS.Refresh, Log: s.Log}
	for _, sv := range b.cfg.Servers {
		host, port, err := net.SplitHostPort(sv.Addr)
		if _, perr := netip.ParseAddr(host); err != nil || perr == nil {
			d.Static = append(d.Static, &upstream.Server{Addr: sv.Addr, Weight: sv.Weight, Backup: sv.Backup})
			continue
		}
		p, _ := strconv.Atoi(port)
		d.Names = append(d.Names, upstream.Name{Host: host, Port: p, Weight: sv.Weight, Backup: sv.Backup})
	}
	if b.cfg.DNS.SRV != "" {
		d.Names = append(d.Names, upstream.Name{Host: b.cfg.DNS.SRV, SRV: true})
	}
	go b.rediscover(ctx, d, s)
}

// rediscover refreshes the servers at the configured interval; health
// checks follow the new set. A failed round keeps the current servers.
func (b *backend) rediscover(ctx context.Context, d *upstream.Discovery, s *Shared) {
	t := time.NewTicker(b.cfg.DNS.Refresh)
	defer t.Stop()
	for {
		if err := d.Refresh(ctx, b.b); err != nil && ctx.Err() == nil {
			s.Log.Warn("upstream discovery failed; keeping current servers", "upstream", b.name, "error", err)
		}
		b.syncHealthTargets()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
