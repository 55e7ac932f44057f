package wasm

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
)

// TestSDKFilterRunsUnchanged runs the http_headers example of the
// Proxy-Wasm Go SDK (github.com/proxy-wasm/proxy-wasm-go-sdk), built
// unchanged with the standard toolchain, when OUTPOST_PROXYWASM_SDK names
// a checkout of it (the SDK is not on the module proxy this project uses,
// so the test is skipped without one).
func TestSDKFilterRunsUnchanged(t *testing.T) {
	sdk := os.Getenv("OUTPOST_PROXYWASM_SDK")
	if sdk == "" {
		t.Skip("OUTPOST_PROXYWASM_SDK is not set")
	}
	out := filepath.Join(t.TempDir(), "http_headers.wasm")
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-buildmode=c-shared", "-o", out, ".")
	cmd.Dir = filepath.Join(sdk, "examples", "http_headers")
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building the SDK example: %v\n%s", err, b)
	}
	code, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load(code, Spec{Name: "sdk", Config: `{"header": "x-wasm-header", "value": "demo"}`}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for i := 0; i < 3; i++ {
		c := newCtx()
		resp := &httphead.Response{Status: 200}
		if _, err := exchange(t, Chain{f}, c, resp); err != nil {
			t.Fatal(err)
		}
		if c.Request.Header.Get("test") != "best" || resp.Header.Get("x-wasm-header") != "demo" ||
			resp.Header.Get("x-proxy-wasm-go-sdk-example") != "http_headers" {
			t.Fatalf("request %s\nresponse %s", c.Request.Header.AppendTo(nil), resp.Header.AppendTo(nil))
		}
	}
}
