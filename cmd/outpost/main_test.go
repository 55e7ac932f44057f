package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testnet"
)

var binary string

// TestMain builds the outpost binary once: these tests run it as a user
// would, as its own process.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "outpost-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "outpost")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running outpost process.
type proc struct {
	cmd  *exec.Cmd
	addr string
	out  *syncBuf
}

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// writeConfig writes a config for an edge on addr in front of origin.
func writeConfig(t *testing.T, addr, origin, extra string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "outpost.yaml")
	cfg := fmt.Sprintf(`listeners: [{addr: "%s"}]
admin: {addr: ""}
upstreams:
  origin: {servers: [{addr: "%s"}]}
routes:
  - name: all
    upstream: origin
%s
log: {access: "off"}
`, addr, origin, extra)
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// startProc starts the binary with args and waits until addr accepts.
// Its state and runtime directories (the generated admin token, the
// upgrade socket) are the test's own.
func startProc(t *testing.T, addr string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), addr: addr, out: &syncBuf{}}
	p.cmd.Env = testEnv(t)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		p.cmd.Wait()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("outpost did not listen on %s:\n%s", addr, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peakRSS returns the process's peak resident memory in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// pattern is an endless deterministic byte stream.
type pattern struct{ n int64 }

func (p *pattern) Read(b []byte) (int, error) {
	for i := range b {
		b[i] = byte(p.n % 251)
		p.n++
	}
	return len(b), nil
}

func TestStreamsOneGiBBothWaysInBoundedMemory(t *testing.T) {
	const size = 1 << 30
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" {
			h := sha256.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%d %x", n, h.Sum(nil))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(size))
		io.CopyN(w, &pattern{}, size)
	})}
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(ol)
	defer origin.Close()
	addr := testnet.FreeAddr(t)
	p := startProc(t, addr, "run", "-c", writeConfig(t, addr, ol.Addr().String(), "    cache: {enabled: false}"))

	resp, err := http.Get("http://" + addr + "/big")
	if err != nil {
		t.Fatal(err)
	}
	down := sha256.New()
	n, err := io.Copy(down, resp.Body)
	resp.Body.Close()
	want := sha256.New()
	io.CopyN(want, &pattern{}, size)
	if err != nil || n != size || string(down.Sum(nil)) != string(want.Sum(nil)) {
		t.Fatalf("download: %d bytes, err %v, digest match %v", n, err, string(down.Sum(nil)) == string(want.Sum(nil)))
	}

	resp, err = http.Post("http://"+addr+"/up", "application/octet-stream", io.LimitReader(&pattern{}, size))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != fmt.Sprintf("%d %x", size, want.Sum(nil)) {
		t.Fatalf("upload: origin saw %q", b)
	}
	rss := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("1 GiB down and 1 GiB up; peak RSS %d MiB", rss>>20)
	if rss > 100<<20 {
		t.Fatalf("peak RSS %d MiB > 100 MiB", rss>>20)
	}
}

func TestUpgradeUnderLoadLosesNoRequest(t *testing.T) {
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	})}
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(ol)
	defer origin.Close()
	addr := testnet.FreeAddr(t)
	cfg := writeConfig(t, addr, ol.Addr().String(), "    cache: {enabled: false}")
	sock := filepath.Join(t.TempDir(), "upgrade.sock")
	old := startProc(t, addr, "run", "-c", cfg, "--upgrade-socket", sock)
	waitSocket(t, sock)

	ctx, cancel := context.WithCancel(context.Background())
	var ok, failed atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			for i := 0; i < 20000 && ctx.Err() == nil; i++ {
				resp, err := client.Get("http://" + addr + "/")
				if err != nil {
					failed.Add(1)
					t.Logf("request failed: %v", err)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond) // load is running
	next, out := upgrade(t, old, "run", "-c", cfg, "--upgrade", "--upgrade-socket", sock)
	time.Sleep(300 * time.Millisecond) // load goes on against the new process
	cancel()
	wg.Wait()
	t.Logf("%d requests served across the upgrade, %d failed", ok.Load(), failed.Load())
	if failed.Load() != 0 || ok.Load() == 0 {
		t.Fatalf("%d failed requests (%d ok)\nold:\n%s\nnew:\n%s", failed.Load(), ok.Load(), old.out.String(), out.String())
	}
	next.Process.Signal(syscall.SIGTERM)
}

// testEnv is the environment with XDG_STATE_HOME and XDG_RUNTIME_DIR in
// directories of the test, the same for every process of one test.
func testEnv(t *testing.T) []string {
	t.Helper()
	env, ok := testEnvs.Load(t.Name())
	if !ok {
		env, _ = testEnvs.LoadOrStore(t.Name(), append(os.Environ(), "XDG_STATE_HOME="+t.TempDir(), "XDG_RUNTIME_DIR="+t.TempDir()))
	}
	return env.([]string)
}

var testEnvs sync.Map // test name -> []string

func TestUpgradeThroughTheDefaultSocket(t *testing.T) {
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(ol)
	defer origin.Close()
	addr := testnet.FreeAddr(t)
	cfg := writeConfig(t, addr, ol.Addr().String(), "    cache: {enabled: false}")
	old := startProc(t, addr, "run", "-c", cfg)
	var runtime string
	for _, kv := range testEnv(t) {
		if v, ok := strings.CutPrefix(kv, "XDG_RUNTIME_DIR="); ok {
			runtime = filepath.Join(v, "outpost")
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	var socks []string
	for len(socks) == 0 && time.Now().Before(deadline) {
		socks, _ = filepath.Glob(filepath.Join(runtime, "*.sock"))
		time.Sleep(20 * time.Millisecond)
	}
	if len(socks) != 1 {
		t.Fatalf("sockets in %s: %v\n%s", runtime, socks, old.out.String())
	}
	if fi, err := os.Stat(socks[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket %s: %v %v", socks[0], fi.Mode(), err)
	}
	if di, err := os.Stat(runtime); err != nil || di.Mode().Perm() != 0o700 {
		t.Fatalf("socket directory %s: %v %v", runtime, di.Mode(), err)
	}
	_, out := upgrade(t, old, "run", "-c", cfg, "--upgrade")
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("after the upgrade: %v\n%s", err, out.String())
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after the upgrade: %d", resp.StatusCode)
	}
}

// upgrade starts a new process with args, which takes the listeners over
// from old, and waits until old has exited. The new process is killed when
// the test ends.
func upgrade(t *testing.T, old *proc, args ...string) (*exec.Cmd, *syncBuf) {
	t.Helper()
	next := exec.Command(binary, args...)
	next.Env = testEnv(t)
	out := &syncBuf{}
	next.Stdout, next.Stderr = out, out
	if err := next.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { next.Process.Kill(); next.Wait() })
	exited := make(chan error, 1)
	go func() { exited <- old.cmd.Wait() }()
	select {
	case <-exited:
	case <-time.After(20 * time.Second):
		t.Fatalf("old process did not exit after the upgrade:\n%s\nnew:\n%s", old.out.String(), out.String())
	}
	return next, out
}

func waitSocket(t *testing.T, path string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no upgrade socket at %s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestValidateNamesFileLineAndKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(file, []byte("routes:\n  - name: a\n    upstream: missing\n"), 0o644)
	out, err := exec.Command(binary, "validate", "-c", file).CombinedOutput()
	if err == nil {
		t.Fatalf("validate accepted a bad config: %s", out)
	}
	if !strings.Contains(string(out), file+":3: routes[0].upstream:") {
		t.Fatalf("validate said %q", out)
	}
	first := bufio.NewScanner(strings.NewReader(string(out)))
	first.Scan()
	t.Log(first.Text())
}

func TestSIGHUPReloadsAndSIGTERMDrains(t *testing.T) {
	serveText := func(s string) string {
		l, _ := net.Listen("tcp", "127.0.0.1:0")
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) })}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
		return l.Addr().String()
	}
	a, b := serveText("A"), serveText("B")
	addr := testnet.FreeAddr(t)
	cfg := writeConfig(t, addr, a, "    cache: {enabled: false}")
	p := startProc(t, addr, "run", "-c", cfg, "--upgrade-socket", filepath.Join(t.TempDir(), "s.sock"))
	body := func() string {
		resp, err := http.Get("http://" + addr + "/")
		if err != nil {
			return err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if got := body(); got != "A" {
		t.Fatalf("before reload: %q", got)
	}
	// A broken file is refused and the running config stays.
	os.WriteFile(cfg, []byte("routes: [{name: x, upstream: nowhere}]\n"), 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "reload failed")
	if got := body(); got != "A" {
		t.Fatalf("after a broken reload: %q", got)
	}
	data, _ := os.ReadFile(writeConfig(t, addr, b, "    cache: {enabled: false}"))
	os.WriteFile(cfg, data, 0o644)
	p.cmd.Process.Signal(syscall.SIGHUP)
	waitLog(t, p, "config reloaded")
	if got := body(); got != "B" {
		t.Fatalf("after reload: %q", got)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.out.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
}

// waitLog waits until the process has logged text.
func waitLog(t *testing.T, p *proc, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.out.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", text, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestValidateSaysWhatAnEmptyConfigRuns(t *testing.T) {
	f := filepath.Join(t.TempDir(), "empty.yaml")
	if err := os.WriteFile(f, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary, "validate", "-c", f).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "no routes: every request will be answered 404") {
		t.Errorf("validate of an empty file: %v %q", err, out)
	}
}

func TestShippedConfigsValidate(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.yaml")
	more, _ := filepath.Glob("../../examples/*/*.yaml")
	files = append(append(files, more...), "../../bench/outpost.yaml")
	if len(files) < 3 {
		t.Fatalf("found only %v", files)
	}
	for _, f := range files {
		if out, err := exec.Command(binary, "validate", "-c", f).CombinedOutput(); err != nil {
			t.Errorf("%s: %v\n%s", f, err, out)
		}
	}
}

func TestDemoServesTheIndexAndCachesIt(t *testing.T) {
	for _, a := range []string{"127.0.0.1:8080", "127.0.0.1:9090"} {
		if c, err := net.Dial("tcp", a); err == nil {
			c.Close()
			t.Skipf("%s is in use: the demo needs it", a)
		}
	}
	p := startProc(t, "127.0.0.1:8080")
	var statuses []string
	for i := 0; i < 2; i++ {
		resp, err := http.Get("http://127.0.0.1:8080/simple/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("status %d", resp.StatusCode)
		}
		statuses = append(statuses, resp.Header.Get("Cache-Status"))
	}
	if !strings.Contains(statuses[1], "hit") {
		t.Fatalf("second request not a hit: %v\n%s", statuses, p.out.String())
	}
	if !strings.Contains(p.out.String(), "curl") {
		t.Errorf("the demo does not say what to try:\n%s", p.out.String())
	}
	// The admin API takes the token the demo generated, and only that.
	var token string
	for _, kv := range testEnv(t) {
		if v, ok := strings.CutPrefix(kv, "XDG_STATE_HOME="); ok {
			token = filepath.Join(v, "outpost", "admin-token")
		}
	}
	if !strings.Contains(p.out.String(), token) {
		t.Errorf("the demo does not say where the admin token is (%s):\n%s", token, p.out.String())
	}
	text, err := os.ReadFile(token)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(text)), "\n")
	for auth, want := range map[string]int{"": 401, "Bearer " + lines[len(lines)-1]: 200} {
		req, _ := http.NewRequest("GET", "http://127.0.0.1:9090/metrics", nil)
		req.Header.Set("Authorization", auth)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET /metrics with %q: %d, want %d", auth, resp.StatusCode, want)
		}
	}
}

func TestDiskCacheSurvivesKill9(t *testing.T) {
	var hits atomic.Int64
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		io.WriteString(w, "file "+r.URL.Path)
	})}
	ol, _ := net.Listen("tcp", "127.0.0.1:0")
	go origin.Serve(ol)
	addr := testnet.FreeAddr(t)
	dir := t.TempDir()
	cfg := writeConfig(t, addr, ol.Addr().String(), "    cache: {enabled: true}\nstorage:\n  memory: {size: 0}\n  disk: {path: \""+dir+"\", size: 64MiB}")
	fetch := func(path string) (string, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return err.Error(), ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b), resp.Header.Get("Cache-Status")
	}
	p := startProc(t, addr, "run", "-c", cfg, "--upgrade-socket", filepath.Join(t.TempDir(), "s.sock"))
	for i := 0; i < 20; i++ {
		fetch(fmt.Sprintf("/packages/%d.tar.gz", i))
	}
	// A fill commits just after its last byte reaches the client: wait
	// until each object is served as a hit, i.e. committed.
	for i := 0; i < 20; i++ {
		deadline := time.Now().Add(5 * time.Second)
		for _, st := fetch(fmt.Sprintf("/packages/%d.tar.gz", i)); !strings.Contains(st, "hit"); _, st = fetch(fmt.Sprintf("/packages/%d.tar.gz", i)) {
			if time.Now().After(deadline) {
				t.Fatalf("object %d never became a hit: %q", i, st)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	p.cmd.Process.Kill() // kill -9: no flush, no goodbye
	p.cmd.Wait()
	origin.Close() // and the origin is gone too

	startProc(t, addr, "run", "-c", cfg, "--upgrade-socket", filepath.Join(t.TempDir(), "s.sock"))
	for i := 0; i < 20; i++ {
		path := fmt.Sprintf("/packages/%d.tar.gz", i)
		body, status := fetch(path)
		if body != "file "+path || !strings.Contains(status, "hit") {
			t.Fatalf("%s after kill -9: %q (Cache-Status %q)", path, body, status)
		}
	}
	if hits.Load() != 20 {
		t.Fatalf("origin saw %d fetches, want 20", hits.Load())
	}
}
