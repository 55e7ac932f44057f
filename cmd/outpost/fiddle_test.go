package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testnet"
)

// TestTestRunsTheExampleFiddles: "outpost test" passes the shipped fiddles
// and exits 1, with the decision trail, when an assertion fails.
func TestTestRunsTheExampleFiddles(t *testing.T) {
	files, _ := filepath.Glob("../../examples/package-index/fiddles/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example fiddles")
	}
	if out, err := exec.Command(binary, append([]string{"test"}, files...)...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	src, _ := os.ReadFile(files[0])
	abs, _ := filepath.Abs("../../examples/package-index.yaml")
	src = bytes.Replace(src, []byte("../../package-index.yaml"), []byte(abs), 1)
	src = bytes.Replace(src, []byte("response.status == 200"), []byte("response.status == 201"), 1)
	os.WriteFile(bad, src, 0o644)
	out, err := exec.Command(binary, "test", bad).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("exit %v\n%s", err, out)
	}
	for _, want := range []string{"FAIL " + bad + ": requests[0]", "assert response.status == 201: false", "route      "} {
		if !strings.Contains(string(out), want) {
			t.Errorf("no %q in\n%s", want, out)
		}
	}
}

// TestFiddleServesWithoutConfig: "outpost fiddle" serves the page and the
// API with no config, and refuses another site's Origin.
func TestFiddleServesWithoutConfig(t *testing.T) {
	addr := testnet.FreeAddr(t)
	cmd := exec.Command(binary, "fiddle", "--addr", addr, "--dir", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/fiddle/"); err == nil {
			break
		}
	}
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("page: %v %v", err, resp)
	}
	resp.Body.Close()
	body := `{"config": "routes:\n  - {name: h, respond: {status: 204}}\n", "requests": [{"url": "http://x.test/", "assert": ["response.status == 204"]}]}`
	resp, err = http.Post("http://"+addr+"/fiddle/api/run", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(got), `"ok":true`) {
		t.Errorf("run: %s", got)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/fiddle/api/run", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Origin", "http://evil.test")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("cross-site: %v %v", err, resp)
	}
	if out, err := exec.Command(binary, "fiddle", "--addr", "0.0.0.0:0").CombinedOutput(); err == nil || !strings.Contains(string(out), "not a loopback address") {
		t.Errorf("a public address: %v %s", err, out)
	}
}
