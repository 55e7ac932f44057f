package config

import (
	"fmt"
	"time"
)

// Wasm declares the Proxy-Wasm filters (sandboxed WebAssembly modules,
// see package wasm) and which of them every route runs.
type Wasm struct {
	// Filters are the filter modules, by name; routes list the names
	// they run. Each is compiled once per config load. Default: none.
	Filters map[string]*WasmFilter `yaml:"filters"`
	// Global names the filters every route runs, before the route's own
	// (listener-wide filters). Default: none.
	Global []string `yaml:"global"`
	// Response says when the filters' response header callbacks run:
	// "after_store" runs them on every response sent, hits included,
	// after the cache stored the origin's response (the cache keeps it
	// unfiltered); "before_store" runs them on the origin's response
	// before the cache stores it (the cache keeps what they leave, hits
	// do not run them again, background refreshes run them too). Body
	// callbacks run as the body is sent in both. Default: after_store.
	Response string `yaml:"response"`
}

// The values of wasm.response.
const (
	WasmAfterStore  = "after_store"
	WasmBeforeStore = "before_store"
)

// WasmFilter is one Proxy-Wasm module and its limits.
type WasmFilter struct {
	// File is the .wasm module, relative to the config file. It must
	// export proxy_abi_version_0_2_0 or proxy_abi_version_0_2_1.
	// Required.
	File string `yaml:"file"`
	// Config is the plugin configuration the module reads in
	// proxy_on_configure. Default: "".
	Config string `yaml:"config"`
	// MemoryPages is the largest memory of one instance, in 64 KiB
	// pages; a module that grows past it traps. Default: 1024 (64 MiB;
	// a module built with Go's wasip1 port needs tens of MiB).
	MemoryPages int `yaml:"memory_pages"`
	// CallTimeout bounds each callback into the module; a callback that
	// runs longer is stopped and its instance discarded. Default: 200ms.
	CallTimeout time.Duration `yaml:"call_timeout"`
	// Instances is the most idle instances kept for reuse; more are made
	// while more requests run the filter at once. Default: 0, one per
	// CPU the Go runtime uses.
	Instances int `yaml:"instances"`
	// BodyLimit is the largest request or response body the filter is
	// given: such a body is buffered whole and the filter's body
	// callback runs once with all of it; a larger body passes
	// unfiltered. Default: 0, bodies are not given to the filter (and
	// stream through).
	BodyLimit Size `yaml:"body_limit"`
	// FailOpen, when true, skips the filter for a request it fails
	// (trap, time or memory limit) instead of answering 500. Default:
	// false.
	FailOpen bool `yaml:"fail_open"`
}

// Defaults of a filter's limits (the same as package wasm's).
const (
	wasmMemoryPages = 1024
	wasmCallTimeout = 200 * time.Millisecond
)

func (f *WasmFilter) setDefaults() {
	f.MemoryPages, f.CallTimeout = wasmMemoryPages, wasmCallTimeout
}

// maxWasmPages is the most a 32-bit WebAssembly memory can hold (4 GiB).
const maxWasmPages = 65536

// wasmProvision resolves the filters' files and fills in the limits
// of filters built in Go.
func (k *checker) wasmProvision() {
	for _, f := range k.c.Wasm.Filters {
		if f != nil {
			k.resolve(&f.File)
			setZero(&f.MemoryPages, wasmMemoryPages)
			setZero(&f.CallTimeout, wasmCallTimeout)
		}
	}
}

// wasm checks the filter declarations and every reference to them.
func (k *checker) wasm() {
	for name, f := range k.c.Wasm.Filters {
		key := "wasm.filters." + name
		if f == nil {
			k.errorf(key, "is empty: file is required")
			continue
		}
		k.file(key+".file", f.File, true)
		if f.MemoryPages < 0 || f.MemoryPages > maxWasmPages {
			k.errorf(key+".memory_pages", "must be between 0 and %d (4 GiB)", maxWasmPages)
		}
		if f.CallTimeout < 0 {
			k.errorf(key+".call_timeout", "must not be negative")
		}
		if f.BodyLimit < 0 {
			k.errorf(key+".body_limit", "must not be negative")
		}
		if f.Instances < 0 {
			k.errorf(key+".instances", "must not be negative")
		}
	}
	switch k.c.Wasm.Response {
	case "", WasmAfterStore, WasmBeforeStore: // "": a config built in Go, after_store
	default:
		k.errorf("wasm.response", "must be %s or %s, not %q", WasmAfterStore, WasmBeforeStore, k.c.Wasm.Response)
	}
	k.wasmNames("wasm.global", k.c.Wasm.Global)
	for i := range k.c.Routes {
		k.wasmNames(fmt.Sprintf("routes[%d].filters", i), k.c.Routes[i].Filters)
	}
}

func (k *checker) wasmNames(key string, names []string) {
	for j, name := range names {
		if _, ok := k.c.Wasm.Filters[name]; !ok {
			k.errorf(fmt.Sprintf("%s[%d]", key, j), "names no filter in wasm.filters: %q", name)
		}
	}
}
