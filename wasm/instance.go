package wasm

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/sys"
)

// The callbacks the host calls, by index into instance.fns.
const (
	onStart = iota // the start function: _initialize (a reactor) or _start
	onContextCreate
	onVMStart
	onConfigure
	onRequestHeaders
	onRequestBody
	onResponseHeaders
	onResponseBody
	onLog
	onDone
	onDelete
	onTick
	onQueueReady
	onHttpCallResponse
	onResponseTrailers
	onRequestTrailers
	numCallbacks
)

var callbackNames = [numCallbacks]string{
	"_initialize", "proxy_on_context_create", "proxy_on_vm_start", "proxy_on_configure",
	"proxy_on_request_headers", "proxy_on_request_body",
	"proxy_on_response_headers", "proxy_on_response_body",
	"proxy_on_log", "proxy_on_done", "proxy_on_delete", "proxy_on_tick",
	"proxy_on_queue_ready", "proxy_on_http_call_response",
	"proxy_on_response_trailers", "proxy_on_request_trailers",
}

const (
	abiVersion020 = "proxy_abi_version_0_2_0"
	abiVersion021 = "proxy_abi_version_0_2_1"
)

// rootID is the root context every instance creates first; request
// contexts count up from it.
const rootID = 1

// instance is one instantiated module. It serves one request at a time.
type instance struct {
	f   *Filter
	mod api.Module
	// ctx carries the instance to the host functions; cancel ends it
	// when a callback runs past its time.
	ctx    context.Context
	cancel context.CancelFunc
	fns    [numCallbacks]api.Function
	alloc  api.Function // proxy_on_memory_allocate, or malloc
	stack  [8]uint64

	// timer stops a callback that runs past its limit (expire); made
	// once, reset for each callback.
	timer    *time.Timer
	timedOut atomic.Bool
	// deadline is the global the loop headers check (see addDeadline),
	// nil for a module run under wazero's watchdog.
	deadline api.MutableGlobal

	cur       *stream // the request being filtered; nil between requests
	pairs     []byte  // scratch for serialized header maps
	lastID    uint32
	lastToken uint32 // of the last HTTP call dispatched
	dead      bool   // trapped, timed out or exited: closed, never reused
}

type instanceKey struct{}

// instantiate makes a new instance and runs its start function and its
// root context's start: proxy_on_context_create, proxy_on_vm_start and
// proxy_on_configure.
func (f *Filter) instantiate() (*instance, error) {
	i := &instance{f: f, lastID: rootID}
	ctx, cancel := context.WithCancel(context.Background())
	i.ctx, i.cancel = context.WithValue(ctx, instanceKey{}, i), cancel
	// The timer is made stopped; the start function is called below, not
	// by wazero, so that it runs under a time limit as callbacks do.
	i.timer = time.AfterFunc(time.Hour, i.expire)
	i.timer.Stop()
	mod, err := f.rt.InstantiateModule(i.ctx, f.code, f.modCfg)
	i.mod = mod
	if err != nil {
		i.close()
		return nil, fmt.Errorf("instantiate: %w", err)
	}
	if f.deadline {
		i.deadline, _ = mod.ExportedGlobal(deadlineExport).(api.MutableGlobal)
	}
	for n, name := range callbackNames {
		i.fns[n] = mod.ExportedFunction(name)
	}
	if i.fns[onStart] == nil {
		i.fns[onStart] = mod.ExportedFunction("_start")
	}
	if i.alloc = mod.ExportedFunction("proxy_on_memory_allocate"); i.alloc == nil {
		i.alloc = mod.ExportedFunction("malloc")
	}
	if i.alloc == nil {
		i.close()
		return nil, errors.New("module exports neither proxy_on_memory_allocate nor malloc")
	}
	if _, err := i.callWithin(max(f.spec.CallTimeout, startTimeout), onStart); err != nil {
		i.close()
		return nil, err
	}
	if _, err := i.call(onContextCreate, rootID, 0); err != nil {
		i.close()
		return nil, err
	}
	if _, err := i.call(onVMStart, rootID, 0); err != nil {
		i.close()
		return nil, err
	}
	ok, err := i.call(onConfigure, rootID, uint64(len(f.spec.Config)))
	if err == nil && ok == 0 && i.fns[onConfigure] != nil {
		err = errors.New("proxy_on_configure refused the configuration")
	}
	if err != nil {
		i.close()
		return nil, err
	}
	return i, nil
}

// expire runs on the timer's goroutine when a callback is over its time.
// Setting the deadline global makes the running code trap at its next
// check (within 4096 iterations of a loop); for a module under wazero's watchdog, cancelling the
// instance's context makes wazero mark the module closed, and the code
// exits at its next loop header. Resources are released by close, on the
// request's goroutine.
func (i *instance) expire() {
	i.timedOut.Store(true)
	if i.deadline != nil {
		i.deadline.Set(1)
	}
	i.cancel()
}

// startTimeout bounds the start function of a new instance.
const startTimeout = 5 * time.Second

// call runs callback n with args under the time limit and returns its
// result (0 when the module does not export it). After an error the
// instance is dead.
func (i *instance) call(n int, args ...uint64) (uint64, error) {
	return i.callWithin(i.f.spec.CallTimeout, n, args...)
}

// callWithin is call with a time limit of its own.
func (i *instance) callWithin(limit time.Duration, n int, args ...uint64) (uint64, error) {
	fn := i.fns[n]
	if fn == nil {
		return 0, nil
	}
	if i.dead {
		return 0, errors.New("instance closed")
	}
	copy(i.stack[:], args)
	i.timer.Reset(limit)
	err := fn.CallWithStack(i.ctx, i.stack[:])
	if !i.timer.Stop() {
		// The timer fired: even a call that returned in time has its
		// instance closed under it.
		i.dead = true
		if err == nil || i.timedOut.Load() {
			return 0, fmt.Errorf("%s: %w", callbackNames[n], ErrTimeout)
		}
	}
	if err != nil {
		i.dead = true
		if i.timedOut.Load() {
			err = ErrTimeout
		}
		return 0, fmt.Errorf("%s: %w", callbackNames[n], classify(err))
	}
	return uint64(uint32(i.stack[0])), nil // every callback returns an i32 or nothing; the upper half is undefined
}

// Errors a filter's failure is reported with.
var (
	ErrTimeout = errors.New("call timed out")
	ErrExit    = errors.New("module exited")
)

// classify names what stopped a call: an exit (a Go panic ends in
// proc_exit(2)) or a trap (wazero's error says which).
func classify(err error) error {
	var exit *sys.ExitError
	if errors.As(err, &exit) {
		return fmt.Errorf("%w with code %d", ErrExit, exit.ExitCode())
	}
	return err
}

// close closes the instance's module; it is not reused.
func (i *instance) close() {
	i.dead = true
	i.timer.Stop()
	i.cancel()
	if i.mod != nil {
		i.mod.Close(context.Background())
	}
}

// allocate asks the module for size bytes of its memory.
func (i *instance) allocate(size uint32) (uint32, error) {
	var st [1]uint64
	st[0] = uint64(size)
	if err := i.alloc.CallWithStack(i.ctx, st[:]); err != nil {
		return 0, err
	}
	return uint32(st[0]), nil
}
