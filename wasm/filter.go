// Package wasm runs sandboxed WebAssembly filters written to the
// Proxy-Wasm ABI (versions 0.2.0 and 0.2.1, the ones Envoy and the
// Proxy-Wasm SDKs target) on wazero, a WebAssembly runtime in pure Go.
//
// A Filter is one module compiled once per config load, with its own
// runtime (so its own memory limit) and a pool of instances: a request
// takes an instance from the pool for the time it is filtered and gives
// it back at the end, so nothing is instantiated per request in steady
// state. A Chain is the list of filters of a route; the edge App calls it
// after routing (request headers, before the cache lookup), before the
// response head is sent or before the cache stores (response headers),
// after the body (response trailers) and at the end (log, done). Beside
// requests, a filter's root context gets ticks (tick.go) and its shared
// queues' notices (queue.go), and a request's callbacks may call the
// config's upstreams (callout.go).
//
// The sandbox: each instance has a memory limit (memory_pages) and each
// callback a time limit (call_timeout), enforced by a check the host
// compiles into the module's loops (see addDeadline). A module gets
// WASI with no file system, no arguments, no environment, stdin empty,
// stdout dropped, stderr to the node's log, real clocks, a cryptographic
// random source and sleeps that return at once; it has no network but
// HTTP calls to the config's upstreams. A
// trap, a panic, an exit or a limit fails the request it was filtering
// (500 naming the filter, or skipped when fail_open) and that instance is
// discarded; the process and other requests are unaffected.
package wasm

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"

	"github.com/outpost-edge/outpost/proxy"
)

// Spec is what the config says about one filter.
type Spec struct {
	// Name identifies the filter in traces, errors and logs.
	Name string
	// Config is the plugin configuration handed to proxy_on_configure.
	Config string
	// MemoryPages is the largest memory of one instance, in 64 KiB pages.
	MemoryPages uint32
	// CallTimeout bounds each callback into the filter.
	CallTimeout time.Duration
	// Instances is the most idle instances kept in the pool.
	Instances int
	// BodyLimit is the largest body the filter is given (buffered whole,
	// then its body callback runs once); 0: bodies are not given to it.
	// A larger body passes unfiltered.
	BodyLimit int64
	// FailOpen skips the filter when it fails instead of failing the
	// request.
	FailOpen bool
	// Upstream returns the upstream of the config a filter's HTTP call
	// (proxy_dispatch_http_call) names, nil for none: calls reach these
	// only. Nil: the filter cannot make calls.
	Upstream func(name string) proxy.Upstream
}

// Defaults for a Spec's zero fields.
const (
	DefaultMemoryPages = 1024 // 64 MiB: a Go (wasip1) module's runtime needs tens of MiB
	DefaultCallTimeout = 200 * time.Millisecond
)

// Filter is a compiled Proxy-Wasm module and its pool of instances.
type Filter struct {
	spec     Spec
	log      *slog.Logger
	rt       wazero.Runtime
	code     wazero.CompiledModule
	modCfg   wazero.ModuleConfig
	pool     chan *instance
	deadline bool // the code checks a deadline global (addDeadline), else wazero's watchdog stops it
	metrics  metrics
	failures atomic.Uint64
	closed   atomic.Bool
	done     chan struct{} // closed by Close: ends the ticks

	tickPeriod atomic.Int64 // proxy_on_tick's period (a time.Duration); 0: no ticks
	tickOnce   sync.Once    // starts ticks

	ready     chan uint32 // ids of its shared queues that got items
	readyOnce sync.Once   // starts queueReady
}

// cache keeps compiled code across config loads: a reload that keeps a
// module compiles nothing.
var cache = wazero.NewCompilationCache()

// Load compiles code as the filter spec describes, instantiates it once
// (which runs proxy_on_vm_start and proxy_on_configure, so a filter that
// refuses its configuration refuses the config) and returns the Filter.
func Load(code []byte, spec Spec, log *slog.Logger) (*Filter, error) {
	if spec.MemoryPages == 0 {
		spec.MemoryPages = DefaultMemoryPages
	}
	if spec.CallTimeout <= 0 {
		spec.CallTimeout = DefaultCallTimeout
	}
	if spec.Instances <= 0 {
		spec.Instances = runtime.GOMAXPROCS(0)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &Filter{spec: spec, log: log.With("filter", spec.Name), pool: make(chan *instance, spec.Instances), done: make(chan struct{}), ready: make(chan uint32, maxQueues)}
	if err := f.compile(code); err != nil {
		return nil, fmt.Errorf("wasm filter %s: %w", spec.Name, err)
	}
	ctx := context.Background()
	inst, err := f.instantiate()
	if err != nil {
		f.Close() // ends the ticks the module may have asked for
		f.rt.Close(ctx)
		return nil, fmt.Errorf("wasm filter %s: %w", spec.Name, err)
	}
	f.pool <- inst
	return f, nil
}

// compile checks the module's ABI version, sets up the runtime and its
// host modules and compiles the code: with the deadline check added to
// its loops (addDeadline), or, for a module that cannot take it, under
// wazero's per-call watchdog (WithCloseOnContextDone, which compiles
// loop-header checks of its own and is what stops a callback over its
// time).
func (f *Filter) compile(code []byte) error {
	timed, err := addDeadline(code)
	if err == nil {
		if err = f.compileWith(timed, false); err == nil {
			f.deadline = true
			return nil
		}
	}
	if err2 := f.compileWith(code, true); err2 != nil {
		return err2
	}
	f.log.Info("wasm filter runs under wazero's per-call watchdog (slower)", "reason", err)
	return nil
}

// compileWith makes the runtime and compiles code in it.
func (f *Filter) compileWith(code []byte, watchdog bool) error {
	ctx := context.Background()
	f.rt = wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().
		WithMemoryLimitPages(f.spec.MemoryPages).
		WithCloseOnContextDone(watchdog).
		WithCompilationCache(cache))
	err := f.compileIn(ctx, code)
	if err != nil {
		f.rt.Close(ctx)
	}
	return err
}

// compileIn sets up the host modules of f.rt and compiles code there.
func (f *Filter) compileIn(ctx context.Context, code []byte) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, f.rt); err != nil {
		return fmt.Errorf("wasi: %w", err)
	}
	if err := instantiateHost(ctx, f.rt); err != nil {
		return fmt.Errorf("host module: %w", err)
	}
	var err error
	if f.code, err = f.rt.CompileModule(ctx, code); err != nil {
		return fmt.Errorf("compile: %w", err)
	}
	exports := f.code.ExportedFunctions()
	if exports[abiVersion020] == nil && exports[abiVersion021] == nil {
		return fmt.Errorf("module exports neither %s nor %s: not a Proxy-Wasm 0.2 module", abiVersion020, abiVersion021)
	}
	// A reactor (Go's c-shared, Rust's cdylib) is initialised by
	// _initialize, a command (TinyGo's) by _start, which returns: the
	// instance calls it (onStart), under a time limit.
	f.modCfg = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithStdout(io.Discard).
		WithStderr(&logWriter{log: f.log}).
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime()
	return nil
}

// get takes an idle instance, or makes one when none is idle.
func (f *Filter) get() (*instance, error) {
	select {
	case i := <-f.pool:
		return i, nil
	default:
		return f.instantiate()
	}
}

// put gives an instance back: to the pool while it is healthy and the
// pool has room, else it is closed.
func (f *Filter) put(i *instance) {
	if i.dead || f.closed.Load() {
		i.close()
		return
	}
	select {
	case f.pool <- i:
	default:
		i.close()
	}
}

// Close closes the idle instances, and the others as the requests using
// them end; the App calls it when a new config replaces its own. Requests
// still running on the old config can go on using the filter. The runtime
// itself is left to the garbage collector (its compiled code is released
// by wazero's finalizers) rather than closed, so that no request can
// find it closed under it.
func (f *Filter) Close() {
	if !f.closed.Swap(true) {
		close(f.done)
	}
	for {
		select {
		case i := <-f.pool:
			i.close()
		default:
			return
		}
	}
}

// Name returns the filter's name.
func (f *Filter) Name() string { return f.spec.Name }

// logWriter sends what a module writes to stderr (a Go panic's message,
// for one) to the node's log, a line at a time, each cut to 1 KiB.
type logWriter struct {
	mu   sync.Mutex
	log  *slog.Logger
	line []byte
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, b := range p {
		if b == '\n' {
			w.log.Warn("wasm stderr", "line", string(w.line))
			w.line = w.line[:0]
		} else if len(w.line) < 1024 {
			w.line = append(w.line, b)
		}
	}
	return len(p), nil
}
