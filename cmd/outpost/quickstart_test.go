package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/outpost-edge/outpost/internal/testnet"
)

// cacheableOrigin counts the requests it answers, each cacheable for a
// minute.
func cacheableOrigin(t *testing.T) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "max-age=60")
		io.WriteString(w, "hello from the origin\n")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// getTwice fetches url twice and returns the two Cache-Status values.
func getTwice(t *testing.T, url string) []string {
	t.Helper()
	var statuses []string
	for range 2 {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello from the origin\n" {
			t.Fatalf("status %d, body %q", resp.StatusCode, body)
		}
		statuses = append(statuses, resp.Header.Get("Cache-Status"))
	}
	return statuses
}

func TestQuickstartConfigValidatesAndServesThroughTheCache(t *testing.T) {
	origin, hits := cacheableOrigin(t)
	addr := testnet.FreeAddr(t)
	file := filepath.Join(t.TempDir(), "outpost.yaml")
	out, err := exec.Command(binary, "quickstart", "--origin", origin.URL, "--listen", addr, "--admin", "127.0.0.1:0", "-o", file).CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "validate", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("validate refused the generated config: %v\n%s", err, out)
	}
	text, _ := os.ReadFile(file)
	for _, want := range []string{"in_flight_per_client: 64", "action: rate_limit", "access: stdout", "admin-token"} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the config lacks %q:\n%s", want, text)
		}
	}
	if out, err := exec.Command(binary, "quickstart", "--origin", origin.URL, "-o", file).CombinedOutput(); err == nil {
		t.Errorf("quickstart overwrote an existing file: %s", out)
	}
	p := startProc(t, addr, "run", "-c", file)
	statuses := getTwice(t, "http://"+addr+"/page")
	if !strings.Contains(statuses[1], "hit") || hits.Load() != 1 {
		t.Fatalf("second request not a hit: %v, origin asked %d times\n%s", statuses, hits.Load(), p.out.String())
	}
	waitLog(t, p, `"path":"/page"`) // the access log, flushed every second
	// The admin token was generated, private to the user.
	var state string
	for _, kv := range testEnv(t) {
		if v, ok := strings.CutPrefix(kv, "XDG_STATE_HOME="); ok {
			state = v
		}
	}
	fi, err := os.Stat(filepath.Join(state, "outpost", "admin-token"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin token: %v, %v", fi, err)
	}
}

func TestRunOriginServesThroughTheCache(t *testing.T) {
	origin, hits := cacheableOrigin(t)
	addr := testnet.FreeAddr(t)
	p := startProc(t, addr, "run", "--origin", origin.URL, "--listen", addr, "--admin", "")
	statuses := getTwice(t, "http://"+addr+"/page")
	if !strings.Contains(statuses[1], "hit") || hits.Load() != 1 {
		t.Fatalf("second request not a hit: %v, origin asked %d times\n%s", statuses, hits.Load(), p.out.String())
	}
}

func TestQuickstartWithDomainsListensOn443And80(t *testing.T) {
	file := filepath.Join(t.TempDir(), "outpost.yaml")
	out, err := exec.Command(binary, "quickstart", "--origin", "https://origin.example.org", "--domain", "www.example.org",
		"--domain", "Example.org", "--email", "ops@example.org", "-o", file).CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart: %v\n%s", err, out)
	}
	if out, err := exec.Command(binary, "validate", "-c", file).CombinedOutput(); err != nil {
		t.Fatalf("validate refused the generated config: %v\n%s", err, out)
	}
	text, _ := os.ReadFile(file)
	for _, want := range []string{`addr: ":443"`, `domains: ["www.example.org", "example.org"]`, `email: "ops@example.org"`,
		`addr: ":80"`, "redirect_https: true", "tls: {enabled: true}", `Host: "origin.example.org"`} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the config lacks %s:\n%s", want, text)
		}
	}
}

func TestQuickstartRefusesAnOriginWithAPath(t *testing.T) {
	out, err := exec.Command(binary, "quickstart", "--origin", "http://127.0.0.1:3000/app").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "without a path") {
		t.Fatalf("quickstart accepted an origin with a path: %v\n%s", err, out)
	}
}
