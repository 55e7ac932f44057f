// Package node runs one Outpost node from a config: it builds the shared
// state (cache, pools), the config-driven App and the proxy engine, opens
// the listeners and the admin API, and reloads atomically. It is what the
// outpost binary runs, and what tests start in-process.
//
// A reload builds and validates everything for the new config before it
// swaps anything: a config that fails is refused with the reason and the
// running one keeps serving. Settings that cannot change while running (the
// listeners, the storage tiers) are refused by name with old and new value.
package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"reflect"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/h2"
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
	admin   *adminServer
	started time.Time
	errc    chan error
	phases  func(*edge.App) any
}

// Options adjust how a node starts.
type Options struct {
	// Listeners, when set, are used instead of opening the config's
	// addresses, in the same order (sockets inherited in an upgrade).
	Listeners []net.Listener
	// AdminListener likewise replaces the admin address.
	AdminListener net.Listener
	// Log is the process logger; default: JSON to stderr.
	Log *slog.Logger
	// Phases, when set, wraps the config-driven App into the value whose
	// phase methods the engine runs: a Go program adds or overrides
	// phases by embedding *edge.App in its own type (see examples/embed).
	Phases func(*edge.App) any
}

// Start builds and starts a node for cfg.
func Start(cfg *config.Config, opts Options) (*Node, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: levelOf(cfg.Log.Level)}))
	}
	shared, err := edge.NewShared(cfg, log)
	if err != nil {
		return nil, err
	}
	n := &Node{Log: log, cfg: cfg, shared: shared, started: time.Now(), errc: make(chan error, 8), phases: opts.Phases}
	app, eng, err := n.build(cfg)
	if err != nil {
		shared.Close()
		return nil, err
	}
	n.app = app
	n.srv = server.New(runtimeOf(cfg, eng), log)
	n.h2 = h2.NewServer(h2.Limits{MaxHeaderBytes: int(cfg.Limits.MaxHeaderBytes), WriteTimeout: cfg.Timeouts.Write})
	n.h2.Log = log
	n.srv.H2 = n.h2
	if err := n.listen(cfg, opts); err != nil {
		n.closeListeners()
		shared.Close()
		return nil, err
	}
	if err := n.startAdmin(cfg, opts.AdminListener); err != nil {
		n.closeListeners()
		shared.Close()
		return nil, err
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

// Err delivers listener failures.
func (n *Node) Err() <-chan error { return n.errc }

// Config returns the config being served.
func (n *Node) Config() *config.Config {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.cfg
}

// Reload switches to cfg if it builds; otherwise the running config stays.
func (n *Node) Reload(cfg *config.Config) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := fixedSettings(n.cfg, cfg); err != nil {
		return err
	}
	app, eng, err := n.build(cfg)
	if err != nil {
		return fmt.Errorf("reload refused: %w", err)
	}
	n.srv.Swap(runtimeOf(cfg, eng))
	old := n.app
	n.cfg, n.app = cfg, app
	old.Close()
	n.shared.Retain(cfg)
	n.Log.Info("config reloaded", "file", cfg.File, "fingerprint", cfg.Fingerprint()[:12])
	return nil
}

// ReloadFile loads path and reloads it.
func (n *Node) ReloadFile(path string) error {
	cfg, err := config.Load(path)
	if err != nil {
		return fmt.Errorf("reload refused: %w", err)
	}
	return n.Reload(cfg)
}

// fixedSettings refuses changes a running node cannot apply.
func fixedSettings(old, cfg *config.Config) error {
	var errs []error
	if !reflect.DeepEqual(old.Listeners, cfg.Listeners) {
		errs = append(errs, fmt.Errorf("reload refused: listeners cannot change while running (restart or upgrade instead): old=%v new=%v", addrs(old), addrs(cfg)))
	}
	if !reflect.DeepEqual(old.Storage, cfg.Storage) {
		errs = append(errs, fmt.Errorf("reload refused: storage cannot change while running: old=%+v new=%+v", old.Storage, cfg.Storage))
	}
	if old.Admin != cfg.Admin {
		errs = append(errs, fmt.Errorf("reload refused: admin cannot change while running: old=%+v new=%+v", old.Admin, cfg.Admin))
	}
	return errors.Join(errs...)
}

func addrs(c *config.Config) []string {
	var out []string
	for _, l := range c.Listeners {
		out = append(out, l.Addr)
	}
	return out
}

// Shutdown stops accepting, drains in-flight requests and closes the
// node's state; it gives up waiting when ctx ends.
func (n *Node) Shutdown(ctx context.Context) error {
	err := n.srv.Shutdown(ctx)
	if n.admin != nil {
		n.admin.close()
	}
	n.shared.Close()
	return err
}

func (n *Node) closeListeners() {
	for _, l := range n.lns {
		l.Close()
	}
}

func levelOf(s string) slog.Level {
	var l slog.Level
	_ = l.UnmarshalText([]byte(s))
	return l
}
