package node

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
)

const upgradeConfig = `admin: {addr: ""}
routes: [{name: all, respond: {status: 200, body: ok}}]
log: {access: "off"}
`

func TestUpgradeSocketIsPrivateAndHandsOver(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	sock, err := UpgradeSocket("outpost.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Dir(sock) != filepath.Join(runtime, "outpost") {
		t.Fatalf("socket %s is not in $XDG_RUNTIME_DIR/outpost", sock)
	}
	old := startNode(t, upgradeConfig, Options{})
	handedOver, err := old.ServeUpgrades(sock)
	if err != nil {
		t.Fatal(err)
	}
	if di, _ := os.Stat(filepath.Dir(sock)); di.Mode().Perm() != 0o700 {
		t.Errorf("socket directory mode %#o, want 0700", di.Mode().Perm())
	}
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want a socket with 0600", fi.Mode())
	}

	takeover, err := Inherit(sock)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("", []byte("listeners: [{addr: \"127.0.0.1:0\"}]\n"+upgradeConfig))
	if err != nil {
		t.Fatal(err)
	}
	takeover.Options.Log = slog.New(slog.DiscardHandler)
	next, err := Start(cfg, takeover.Options)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Shutdown(t.Context())
	if err := takeover.Ready(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-handedOver:
	case <-time.After(10 * time.Second):
		t.Fatal("the old node did not hand over")
	}
	if next.Addrs()[0].String() != old.Addrs()[0].String() {
		t.Fatalf("new node on %v, old on %v", next.Addrs(), old.Addrs())
	}
	if got := publicGet(t, next, "/"); got != "ok" {
		t.Fatalf("new node answers %q", got)
	}
}

func TestUpgradeSocketRefusesADirectoryOthersCanEnter(t *testing.T) {
	runtime := t.TempDir()
	t.Setenv("XDG_RUNTIME_DIR", runtime)
	os.Mkdir(filepath.Join(runtime, "outpost"), 0o700)
	os.Chmod(filepath.Join(runtime, "outpost"), 0o755)
	if _, err := UpgradeSocket("outpost.yaml"); err == nil || !strings.Contains(err.Error(), "open to other users") {
		t.Errorf("UpgradeSocket with a 0755 directory: %v", err)
	}
	shared := t.TempDir()
	os.Chmod(shared, 0o1777) // like /tmp
	n := startNode(t, upgradeConfig, Options{})
	if _, err := n.ServeUpgrades(filepath.Join(shared, "outpost.sock")); err == nil {
		t.Error("ServeUpgrades in a directory anyone can write to")
	}
	if _, err := Inherit(filepath.Join(shared, "outpost.sock")); err == nil {
		t.Error("Inherit from a directory anyone can write to")
	}
}

// dialEnv, when set, makes the test binary a client of the upgrade socket
// it names (see TestUpgradeSocketRefusesAnotherUser).
const dialEnv = "OUTPOST_TEST_DIAL_UPGRADE"

func TestMain(m *testing.M) {
	if path := os.Getenv(dialEnv); path != "" {
		c, err := net.Dial("unix", path)
		if err != nil {
			fmt.Println("dial:", err)
			os.Exit(1)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		fmt.Printf("received %d bytes (%v)\n", len(b), err)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func TestUpgradeSocketRefusesAnotherUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("needs root, to run a client under another user id (test.sh runs as root, as CI does)")
	}
	// The client is this test binary run as nobody: copy it where nobody
	// may run it.
	dir, err := os.MkdirTemp("", "outpost-upgrade")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "client")
	if b, err := os.ReadFile(os.Args[0]); err != nil || os.WriteFile(bin, b, 0o755) != nil {
		t.Fatal("copy test binary:", err)
	}
	sockDir := filepath.Join(dir, "sock")
	os.Mkdir(sockDir, 0o700)
	sock := filepath.Join(sockDir, "outpost.sock")

	var log syncBuffer
	n := startNode(t, upgradeConfig, Options{Log: slog.New(slog.NewTextHandler(&log, nil))})
	handedOver, err := n.ServeUpgrades(sock)
	if err != nil {
		t.Fatal(err)
	}
	// Open the way to the socket, as a mistaken chmod would: only the
	// peer check is left between another user and the listeners.
	os.Chmod(sockDir, 0o755)
	os.Chmod(sock, 0o666)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), dialEnv+"="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(out), "received 0 bytes") {
		t.Fatalf("client as nobody: %v: %s", err, out)
	}
	select {
	case <-handedOver:
		t.Fatal("the node handed its listeners to another user")
	case <-time.After(100 * time.Millisecond):
	}
	if !strings.Contains(log.String(), "peer runs as uid 65534") {
		t.Errorf("the refusal is not logged:\n%s", log.String())
	}
	if got := publicGet(t, n, "/"); got != "ok" {
		t.Fatalf("the node stopped serving: %q", got)
	}
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
