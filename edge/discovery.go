package edge

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"strconv"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/upstream"
)

// discovery is a running upstream.Discovery of a backend.
type discovery struct {
	stop context.CancelFunc
	done chan struct{} // closed when its Run has returned
}

// startDiscovery re-resolves the upstream's DNS names when the config asks
// for it: servers given by name, and an SRV name. A reload calls it again
// with the new names: the running discovery stops, and the new one starts
// once the old one's last round is over, so that the old names cannot
// overwrite the new servers. The caller holds Shared.mu.
func (b *backend) startDiscovery(cfg *config.Upstream, log *slog.Logger) {
	prev := b.disc
	b.disc = nil
	if cfg.DNS == nil {
		if prev != nil {
			prev.stop()
		}
		return
	}
	d := &upstream.Discovery{Interval: cfg.DNS.Refresh, Log: log}
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
	d.Changed = func(*upstream.Backend) { b.serversChanged() }
	ctx, stop := context.WithCancel(b.ctx)
	next := &discovery{stop: stop, done: make(chan struct{})}
	b.disc = next
	go func() { // owned by next; ends with b.ctx or the next reload
		defer close(next.done)
		if prev != nil {
			prev.stop()
			<-prev.done
		}
		d.Run(ctx, b.b) // Run recovers panics of its rounds
	}()
}
