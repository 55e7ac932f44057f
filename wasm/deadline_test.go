package wasm

import (
	"context"
	"encoding/binary"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/outpost-edge/outpost/httphead"
)

// endless is a module exporting "run", an endless loop: (loop (br 0)).
var endless = []byte("\x00asm\x01\x00\x00\x00" +
	"\x01\x04\x01\x60\x00\x00" + // type: func [] -> []
	"\x03\x02\x01\x00" + // function 0 of type 0
	"\x05\x03\x01\x00\x01" + // memory of 1 page
	"\x07\x07\x01\x03run\x00\x00" + // export "run"
	"\x0a\x09\x01\x07\x00\x03\x40\x0c\x00\x0b\x0b") // code: loop br 0 end end

// TestDeadlineStopsAnEndlessLoop runs an endless loop without wazero's
// watchdog (WithCloseOnContextDone off): setting the global addDeadline
// adds stops it, and the loop does not block a garbage collection.
func TestDeadlineStopsAnEndlessLoop(t *testing.T) {
	code, err := addDeadline(endless)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rt := wazero.NewRuntime(ctx)
	defer rt.Close(ctx)
	mod, err := rt.Instantiate(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	g, ok := mod.ExportedGlobal(deadlineExport).(api.MutableGlobal)
	if !ok {
		t.Fatal("no deadline global exported")
	}
	// A garbage collection while the loop runs must not wait for it
	// forever: the check leaves for Go, where the goroutine can stop.
	time.AfterFunc(20*time.Millisecond, func() {
		runtime.GC()
		g.Set(1)
	})
	done := make(chan error, 1)
	go func() { _, err := mod.ExportedFunction("run").Call(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "unreachable") {
			t.Fatalf("loop ended with %v, want a trap", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the loop was not stopped") // the goroutine spins on: the test process ends anyway
	}
}

// TestDeadlineAddsToEveryLayout checks the rewrite of modules with and
// without global and export sections, and that an instruction the
// rewriter does not know is refused (the filter then runs under wazero's
// watchdog) rather than copied blindly.
func TestDeadlineAddsToEveryLayout(t *testing.T) {
	withGlobal := []byte("\x00asm\x01\x00\x00\x00" +
		"\x01\x04\x01\x60\x00\x00" +
		"\x03\x02\x01\x00" +
		"\x05\x03\x01\x00\x01" +
		"\x06\x06\x01\x7f\x01\x41\x07\x0b" + // global 0: mut i32 = 7
		"\x0a\x0b\x01\x09\x00\x03\x40\x23\x00\x0d\x00\x0b\x0b") // loop (br_if 0 (global.get 0))
	for name, code := range map[string][]byte{"no globals, exports": endless, "a global, no exports": withGlobal} {
		out, err := addDeadline(code)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		ctx := context.Background()
		rt := wazero.NewRuntime(ctx)
		mod, err := rt.Instantiate(ctx, out)
		if err != nil {
			t.Fatalf("%s: rewritten module invalid: %v", name, err)
		}
		if mod.ExportedGlobal(deadlineExport) == nil {
			t.Fatalf("%s: no deadline global", name)
		}
		rt.Close(ctx)
	}
	gc := append([]byte(nil), endless...)
	gc[len(gc)-4] = 0xfb // a GC proposal instruction in place of br
	if _, err := addDeadline(gc); err == nil || !strings.Contains(err.Error(), "opcode 0xfb") {
		t.Fatalf("unknown instruction: %v", err)
	}
}

// TestExamplesTakeTheDeadline: the filters built with the standard
// toolchain run with the deadline check, not under the per-call watchdog.
func TestExamplesTakeTheDeadline(t *testing.T) {
	if f := load(t, "testfilter", Spec{Config: "empty"}); !f.deadline {
		t.Fatal("testfilter runs under wazero's watchdog")
	}
}

// TestModulesTheRewriterRefusesRunUnderTheWatchdog: a module without
// memory cannot take the deadline check (it leaves for Go through
// memory.grow); it loads under wazero's per-call watchdog, which still
// stops its endless loop.
func TestModulesTheRewriterRefusesRunUnderTheWatchdog(t *testing.T) {
	section := func(id byte, content ...string) string {
		body := strings.Join(content, "")
		return string(id) + string(binary.AppendUvarint(nil, uint64(len(body)))) + body
	}
	export := func(name string, fn byte) string { return string(byte(len(name))) + name + "\x00" + string(fn) }
	code := "\x00asm\x01\x00\x00\x00" +
		section(1, "\x03", "\x60\x00\x00", "\x60\x01\x7f\x01\x7f", "\x60\x03\x7f\x7f\x7f\x01\x7f") +
		section(3, "\x03\x00\x01\x02") +
		section(7, "\x03", export(abiVersion021, 0), export("proxy_on_memory_allocate", 1), export("proxy_on_request_headers", 2)) +
		section(10, "\x03",
			"\x02\x00\x0b",                         // abi version: nothing
			"\x04\x00\x41\x00\x0b",                 // allocate: 0
			"\x08\x00\x03\x40\x0c\x00\x0b\x00\x0b") // request headers: loop br 0 end unreachable
	f, err := Load([]byte(code), Spec{Name: "bare", CallTimeout: 50 * time.Millisecond}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.deadline {
		t.Fatal("a module without memory took the deadline check")
	}
	start := time.Now()
	if _, err := exchange(t, Chain{f}, newCtx(), &httphead.Response{Status: 200}); !errors.Is(err, ErrTimeout) || time.Since(start) > 2*time.Second {
		t.Fatalf("endless loop under the watchdog: %v after %v", err, time.Since(start))
	}
}
