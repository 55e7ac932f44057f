package upstream

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Resolver looks up names; *net.Resolver implements it, tests inject fakes.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
}

var _ Resolver = (*net.Resolver)(nil)

// Name is a DNS name whose records become servers.
type Name struct {
	// Host is resolved with A and AAAA queries, or, when SRV is set, is
	// the full SRV name ("_http._tcp.origin.example").
	Host string
	// Port is the servers' port for A/AAAA names. SRV records carry their own.
	Port int
	// SRV makes Host an SRV name. Each record's target is resolved with
	// A/AAAA; its weight becomes the servers' Weight, and records of the
	// lowest priority are primaries, the rest backups.
	SRV bool
	// Weight is every A/AAAA server's weight; 0 means 1.
	Weight int
	// Backup makes every server of the name a backup.
	Backup bool
}

// Discovery keeps a Backend's servers in line with static addresses and DNS
// names, re-resolving the names periodically. A name that fails to resolve
// keeps the servers it last resolved to: an outage of DNS does not empty the
// backend, and one broken name does not freeze the others. A Discovery must
// not be copied after first use.
type Discovery struct {
	// Static servers are always present.
	Static []*Server
	// Names are resolved on each round.
	Names []Name
	// Resolver looks names up. Nil means net.DefaultResolver.
	Resolver Resolver
	// Interval is the time between rounds. Default 30s.
	Interval time.Duration
	// Timeout bounds one round. Default 5s.
	Timeout time.Duration
	// Log receives resolution failures. Nil means slog.Default().
	Log *slog.Logger
	// Changed, if set, is called after a round that changed the backend's
	// servers, for instance to give health checks the new targets:
	// checker.SetTargets(b.Addrs(nil)).
	Changed func(b *Backend)

	// mu guards last: the servers each name last resolved to, by index
	// in Names.
	mu   sync.Mutex
	last map[int][]*Server
}

// Resolve runs one round: it returns the static servers plus the servers
// every name resolves to, sorted by address. For a name that fails, it uses
// the servers of its last success and reports the failure in err; the
// servers are worth applying even when err is not nil.
func (d *Discovery) Resolve(ctx context.Context) (servers []*Server, err error) {
	r := cmp.Or[Resolver](d.Resolver, net.DefaultResolver)
	servers = slices.Clone(d.Static)
	var errs []error
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.last == nil {
		d.last = map[int][]*Server{}
	}
	for i, n := range d.Names {
		var found []*Server
		var err error
		if n.SRV {
			found, err = resolveSRV(ctx, r, n)
		} else {
			found, err = resolveHost(ctx, r, n.Host, n.Port, n.Weight, n.Backup)
		}
		if err != nil {
			errs = append(errs, err)
			found = d.last[i]
		} else {
			d.last[i] = found
		}
		servers = append(servers, found...)
	}
	// The same address reached through two names is one server: the first
	// listed, static servers before names.
	slices.SortStableFunc(servers, func(a, b *Server) int { return cmp.Compare(a.Addr, b.Addr) })
	servers = slices.CompactFunc(servers, func(a, b *Server) bool { return a.Addr == b.Addr })
	return servers, errors.Join(errs...)
}

func resolveHost(ctx context.Context, r Resolver, host string, port, weight int, backup bool) ([]*Server, error) {
	ips, err := r.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %w", host, err)
	}
	servers := make([]*Server, 0, len(ips))
	for _, ip := range ips {
		addr := net.JoinHostPort(ip.Unmap().String(), strconv.Itoa(port))
		servers = append(servers, &Server{Addr: addr, Weight: weight, Backup: backup})
	}
	return servers, nil
}

func resolveSRV(ctx context.Context, r Resolver, n Name) ([]*Server, error) {
	_, records, err := r.LookupSRV(ctx, "", "", n.Host)
	if err != nil {
		return nil, fmt.Errorf("resolving SRV %s: %w", n.Host, err)
	}
	if len(records) == 0 {
		return nil, nil
	}
	top := slices.MinFunc(records, func(a, b *net.SRV) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
	var servers []*Server
	for _, rec := range records {
		found, err := resolveHost(ctx, r, rec.Target, int(rec.Port), max(int(rec.Weight), 1), n.Backup || rec.Priority != top)
		if err != nil {
			return nil, fmt.Errorf("resolving SRV %s: %w", n.Host, err)
		}
		servers = append(servers, found...)
	}
	return servers, nil
}

// Refresh runs one round and gives b the servers found. Its error reports
// names that failed (their last known servers were kept) or a set that b
// rejected.
func (d *Discovery) Refresh(ctx context.Context, b *Backend) error {
	ctx, cancel := context.WithTimeout(ctx, cmp.Or(d.Timeout, 5*time.Second))
	defer cancel()
	servers, rerr := d.Resolve(ctx)
	if rerr != nil && len(servers) == 0 {
		// Nothing ever resolved: keep whatever the backend has.
		return fmt.Errorf("upstream %q: discovery: %w", b.Name(), rerr)
	}
	changed, err := b.setServers(servers)
	if changed && d.Changed != nil {
		d.Changed(b)
	}
	if rerr != nil {
		return fmt.Errorf("upstream %q: discovery (keeping last known servers of failed names): %w", b.Name(), rerr)
	}
	return err
}

// Run refreshes b at once and then every Interval until ctx is done. It is
// meant to run in its own goroutine, owned by whoever owns ctx; failures
// and panics are logged and the next round tried.
func (d *Discovery) Run(ctx context.Context, b *Backend) {
	log := cmp.Or(d.Log, slog.Default())
	t := time.NewTicker(cmp.Or(d.Interval, 30*time.Second))
	defer t.Stop()
	for {
		d.round(ctx, b, log)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (d *Discovery) round(ctx context.Context, b *Backend, log *slog.Logger) {
	defer func() {
		if p := recover(); p != nil {
			log.Error("upstream discovery panicked", "backend", b.Name(), "panic", p)
		}
	}()
	if err := d.Refresh(ctx, b); err != nil && ctx.Err() == nil {
		log.Warn("upstream discovery failed", "backend", b.Name(), "err", err)
	}
}
