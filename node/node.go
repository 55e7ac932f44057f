// Package node runs one Outpost node from a config: it builds the shared
// state (cache, pools), the config-driven App and the proxy engine, opens
// the listeners and the admin API, and reloads atomically. It is what the
// outpost binary runs, and what tests start in-process.
//
// A reload lists what changed (config.Diff) and either applies every
// changed setting or refuses the reload naming each one it cannot apply,
// with old and new value; the running config then keeps serving. The
// listeners, the storage tiers and the admin API are refused (restart or
// upgrade instead), and so is adding or removing the GeoIP database. The
// node itself applies log.* (the process log's level and format change in
// place, a new access log is opened) and reopens the GeoIP database;
// everything else is applied by building a new App, which is swapped in
// only once it builds.
package node

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/acme"
	"github.com/outpost-edge/outpost/cluster"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/geoip"
	"github.com/outpost-edge/outpost/h2"
	"github.com/outpost-edge/outpost/h3"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/server"
)

// Version is the build's version, set by the linker.
var Version = "dev"

// Node is a running Outpost node.
type Node struct {
	Log *slog.Logger

	mu      sync.Mutex // serialises Reload
	cfg     *config.Config
	app     *edge.App
	shared  *edge.Shared
	srv     *server.Server
	h2      *h2.Server
	lns     []net.Listener
	h3      []*h3.Server // HTTP/3 on the UDP ports of TLS listeners
	admin   *adminServer
	started time.Time
	errc    chan error
	phases  func(*edge.App) any

	acme      []*acme.Manager // by listener; nil for those without tls.acme
	stopACME  context.CancelFunc
	redirects []*http.Server // the redirect_https listeners

	memLimit int64         // the runtime memory limit last set; 0 before
	memStop  chan struct{} // stops followMemoryLimit; nil without Options.SetMemoryLimit

	procLog *procLog    // nil when Options.Log was given
	access  accessLog   // the access log the App writes to
	retired []accessLog // replaced by reloads in the last retireAfter; closed by then or by Shutdown

	cluster     *cluster.Cluster // nil without a cluster: block
	clusterHost *clusterHost
	shard       *clusterShard // nil outside a cluster
}

// Options adjust how a node starts.
type Options struct {
	// Listeners, when set, are used instead of opening the config's
	// addresses, in the same order (sockets inherited in an upgrade).
	Listeners []net.Listener
	// AdminListener likewise replaces the admin address.
	AdminListener net.Listener
	// Log is the process log. Default: the config's log.format at its
	// log.level, to LogOutput, both changed by a reload. A Log given here
	// is used as it is: log.format and log.level do not apply to it.
	Log *slog.Logger
	// LogOutput is where the default process log goes. Default: stderr.
	LogOutput io.Writer
	// Phases, when set, wraps the config-driven App into the value whose
	// phase methods the engine runs: a Go program adds or overrides
	// phases by embedding *edge.App in its own type (see examples/embed).
	Phases func(*edge.App) any
	// SetMemoryLimit makes the node set the Go runtime's memory limit,
	// which is process-wide, from the config (memory_limit, else
	// GOMEMLIMIT, else the storage sizes; see memlimit.go) at start and
	// on every reload. The outpost binary sets it; a program that runs
	// several nodes or manages its own limit leaves it off.
	SetMemoryLimit bool
}

// Start builds and starts a node for cfg.
func Start(cfg *config.Config, opts Options) (*Node, error) {
	n := &Node{Log: opts.Log, cfg: cfg, started: time.Now(), errc: make(chan error, 8), phases: opts.Phases}
	if n.Log == nil {
		n.procLog, n.Log = newProcLog(cmp.Or[io.Writer](opts.LogOutput, os.Stderr), cfg.Log)
	}
	var err error
	if n.access, err = openAccessLog(cfg.Log.Access); err != nil {
		return nil, err
	}
	// The node owns the access log (see accessLog): Shared gets a config
	// without one, and the node's log instead.
	sharedCfg := *cfg
	sharedCfg.Log.Access = "off"
	if n.shared, err = edge.NewShared(&sharedCfg, n.Log); err != nil {
		n.access.close()
		return nil, err
	}
	n.shared.Access = n.access.l
	n.prepareShard(cfg)
	app, eng, err := n.build(cfg)
	if err != nil {
		n.closeState()
		return nil, err
	}
	n.app = app
	n.srv = server.New(runtimeOf(cfg, eng), n.Log)
	n.h2 = h2.NewServer(h2.Limits{MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes), WriteTimeout: cfg.Timeouts.Write})
	n.h2.Log = n.Log
	n.srv.H2 = n.h2
	if err := n.startCluster(cfg); err != nil {
		n.closeState()
		return nil, err
	}
	if err := n.listen(cfg, opts); err != nil {
		n.closeListeners()
		n.closeState()
		return nil, err
	}
	if err := n.startACME(); err != nil {
		n.closeListeners()
		n.closeState()
		return nil, err
	}
	n.clusterOpened()
	if err := n.startAdmin(cfg, opts.AdminListener); err != nil {
		n.closeListeners()
		n.closeState()
		return nil, err
	}
	if opts.SetMemoryLimit {
		n.applyMemoryLimit(cfg, true)
		n.memStop = make(chan struct{})
		go n.followMemoryLimit(n.memStop)
	}
	return n, nil
}

func (n *Node) build(cfg *config.Config) (*edge.App, *proxy.Engine, error) {
	app, err := edge.Build(cfg, n.shared)
	if err != nil {
		return nil, nil, err
	}
	var phases any = app
	if n.phases != nil {
		phases = n.phases(app)
	}
	eng, err := proxy.New(phases, app.Options())
	if err != nil {
		return nil, nil, err
	}
	return app, eng, nil
}

func runtimeOf(cfg *config.Config, eng *proxy.Engine) server.Runtime {
	t, l := cfg.Timeouts, cfg.Limits
	minRate := int(l.MinBodyRate)
	if minRate == 0 {
		minRate = -1 // the config's 0 turns the check off; the server's 0 means its default
	}
	return server.Runtime{
		Engine: eng,
		Timeouts: server.Timeouts{Header: t.Header, Idle: t.Idle, BodyRead: t.BodyRead, Write: t.Write,
			Request: t.Request, BodyRateGrace: t.BodyRateGrace},
		Limits: server.Limits{
			MaxHeaderBytes: int(l.MaxHeaderBytes), MaxHeaders: l.MaxHeaders,
			MaxBodyBytes: int64(l.MaxBodyBytes), MaxConns: l.MaxConns, MaxConnsPerIP: l.MaxConnsPerIP,
			MinBodyRate: minRate,
		},
		Paths: cfg.Proxy.Paths(),
	}
}

// Addrs returns the addresses the public listeners are bound to.
func (n *Node) Addrs() []net.Addr {
	out := make([]net.Addr, len(n.lns))
	for i, l := range n.lns {
		out[i] = l.Addr()
	}
	return out
}

// AdminAddr returns the admin API's address, or nil when it is off.
func (n *Node) AdminAddr() net.Addr {
	if n.admin == nil {
		return nil
	}
	return n.admin.ln.Addr()
}

// Settle waits until the cache's background work (fills that outlive
// their request, stale-while-revalidate refreshes) is done, or ctx ends:
// an embedder's test, like the fiddle, settles before it asserts what the
// next request sees.
func (n *Node) Settle(ctx context.Context) error { return n.shared.Settle(ctx) }

// Err delivers listener failures.
func (n *Node) Err() <-chan error { return n.errc }

// Config returns the config being served.
func (n *Node) Config() *config.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// Reload switches to cfg if every setting it changes can be applied and
// it builds; otherwise the running config stays and the error names what
// was refused.
func (n *Node) Reload(cfg *config.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	changes := config.Diff(n.cfg, cfg)
	if err := refused(changes, n.cfg, cfg); err != nil {
		return err
	}
	access := n.access
	if changed(changes, "log.access") {
		var err error
		if access, err = openAccessLog(cfg.Log.Access); err != nil {
			return fmt.Errorf("reload refused: log.access: %w", err)
		}
	}
	n.shared.Access = access.l // what the new App writes to
	app, eng, err := n.build(cfg)
	if err == nil {
		if err = n.reopenGeo(cfg); err != nil {
			app.Close()
		}
	}
	if err != nil {
		n.shared.Access = n.access.l
		if access != n.access {
			access.close()
		}
		return fmt.Errorf("reload refused: %w", err)
	}
	n.srv.Swap(runtimeOf(cfg, eng))
	old := n.app
	n.cfg, n.app = cfg, app
	go old.Close() // it may wait for its spans to be exported
	n.shared.Retain(cfg)
	if n.memStop != nil {
		n.applyMemoryLimit(cfg, true)
	}
	if n.procLog != nil {
		n.procLog.apply(cfg.Log)
	}
	if access != n.access {
		n.retire(n.access)
		n.access = access
	}
	n.Log.Info("config reloaded", "file", cfg.File, "fingerprint", cfg.Fingerprint()[:12], "changed", changedKeys(changes))
	return nil
}

// fixedKeys are the settings a running node cannot change, and why.
var fixedKeys = []struct{ key, why string }{
	{"listeners", "listeners cannot change while running (restart or upgrade instead)"},
	{"storage", "storage cannot change while running (restart or upgrade instead)"},
	{"admin", "admin cannot change while running (restart or upgrade instead)"},
	{"cluster", "cluster cannot change while running (restart or upgrade instead)"},
}

// refused names every change a reload cannot apply, with old and new
// value; nil when it can apply them all.
func refused(changes []config.Change, old, cfg *config.Config) error {
	var errs []error
	for _, c := range changes {
		for _, f := range fixedKeys {
			if c.Under(f.key) {
				errs = append(errs, fmt.Errorf("reload refused: %s: %s: old=%s new=%s", c.Key, f.why, c.Old, c.New))
			}
		}
	}
	// An App holds the database it was built with; only what the database
	// answers can change under it.
	if was, is := old.Protection.GeoIP.Database, cfg.Protection.GeoIP.Database; (was == "") != (is == "") {
		errs = append(errs, fmt.Errorf("reload refused: protection.geoip.database: the GeoIP database cannot be added or removed while running (restart or upgrade instead): old=%q new=%q", was, is))
	}
	return errors.Join(errs...)
}

// reopenGeo reopens the GeoIP database, so that a reload picks up a new
// path or a file replaced in place.
func (n *Node) reopenGeo(cfg *config.Config) error {
	path := cfg.Protection.GeoIP.Database
	if path == "" {
		return nil
	}
	db, ok := n.shared.Geo().(*geoip.DB)
	if !ok {
		return errors.New("protection.geoip.database: no database open to reopen")
	}
	if err := db.Reopen(path); err != nil {
		return fmt.Errorf("protection.geoip.database: %w", err)
	}
	return nil
}

// retire closes an access log replaced by a reload once the requests
// still running on the old App are done, or at Shutdown.
func (n *Node) retire(a accessLog) {
	n.retired = append(n.retired, a)
	time.AfterFunc(retireAfter, func() {
		n.mu.Lock()
		n.retired = slices.DeleteFunc(n.retired, func(r accessLog) bool { return r == a })
		n.mu.Unlock()
		a.close()
	})
}

// retireAfter is how long requests that started before a reload may
// still write to the access log they started with.
const retireAfter = time.Minute

// changed reports whether a setting under key changed.
func changed(changes []config.Change, key string) bool {
	for _, c := range changes {
		if c.Under(key) {
			return true
		}
	}
	return false
}

// changedKeys lists the changed settings for the reload log, shortened
// when many changed.
func changedKeys(changes []config.Change) string {
	keys := make([]string, len(changes))
	for i, c := range changes {
		keys[i] = c.Key
	}
	return logList(keys)
}

// ReloadFile loads path and reloads it (with the pushed config the node
// runs in a cluster, over the file's local keys).
func (n *Node) ReloadFile(path string) error {
	if cfg, ok, err := n.fileConfig(); ok {
		if err != nil {
			return fmt.Errorf("reload refused: %w", err)
		}
		return n.Reload(cfg)
	}
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("reload refused: %w", err)
	}
	return n.Reload(cfg)
}

// Shutdown stops accepting, drains in-flight requests and closes the
// node's state; it gives up waiting when ctx ends.
func (n *Node) Shutdown(ctx context.Context) error {
	var h3done sync.WaitGroup
	for _, s := range n.h3 {
		h3done.Go(func() { _ = s.Shutdown(ctx) }) // side by side with the TCP listeners' drain
	}
	err := n.srv.Shutdown(ctx)
	n.closeACME(ctx)
	h3done.Wait()
	n.mu.Lock()
	n.app.Close() // exports the spans still buffered
	if n.memStop != nil {
		close(n.memStop)
		n.memStop = nil
	}
	n.mu.Unlock()
	if n.admin != nil {
		n.admin.close()
	}
	n.closeState()
	return err
}

// closeState leaves the cluster, then closes the shared state and the
// access logs, in that order: Shared flushes what the App wrote.
func (n *Node) closeState() {
	if n.cluster != nil {
		n.cluster.Close()
	}
	if n.shared != nil {
		n.shared.Close()
	}
	for _, m := range n.acme {
		if m != nil {
			m.Close()
		}
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	n.access.close()
	for _, a := range n.retired {
		a.close()
	}
}

func (n *Node) closeListeners() {
	for _, l := range n.lns {
		l.Close()
	}
}
