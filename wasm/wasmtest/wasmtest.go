// Package wasmtest builds the example Proxy-Wasm filters of
// examples/wasm with the standard Go toolchain (GOOS=wasip1 GOARCH=wasm,
// -buildmode=c-shared), for the tests of package wasm and the end-to-end
// tests. Each filter is built once per test process.
package wasmtest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	dir   string
	built = map[string]string{}
)

// Build returns the path of the example filter name (a directory of
// examples/wasm, e.g. "testfilter"), building it on first use.
func Build(t testing.TB, name string) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if p, ok := built[name]; ok {
		return p
	}
	if dir == "" {
		d, err := os.MkdirTemp("", "outpost-wasm-")
		if err != nil {
			t.Fatal(err)
		}
		dir = d // left for the OS to clean: shared by every test of the process
	}
	out := filepath.Join(dir, name+".wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, "./examples/wasm/"+name)
	cmd.Dir = root()
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm", "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building example filter %s: %v\n%s", name, err, b)
	}
	built[name] = out
	return out
}

// root is the repository's root: this file is wasm/wasmtest/wasmtest.go.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}
