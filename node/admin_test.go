package node

import (
	"context"
	"crypto/sha256"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
)

// startNode starts a node from yaml, written to a file in a temporary
// directory; the public listener and the admin API get ephemeral loopback
// ports, whatever the config says.
func startNode(t *testing.T, yaml string, opts Options) *Node {
	t.Helper()
	file := filepath.Join(t.TempDir(), "outpost.yaml")
	yaml = "listeners: [{addr: \"127.0.0.1:0\"}]\n" + yaml
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Log == nil && opts.LogOutput == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.AdminListener == nil && cfg.Admin.Addr != "" {
		opts.AdminListener = listenLoopback(t)
	}
	n, err := Start(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n
}

func listenLoopback(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// adminCall sends one request to n's admin API; header holds name, value
// pairs, with "Host" setting the request's Host.
func adminCall(t *testing.T, n *Node, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.AdminAddr().String()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" {
			req.Host = header[i+1]
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// publicGet returns the body n's public listener answers for path.
func publicGet(t *testing.T, n *Node, path string) string {
	t.Helper()
	resp, err := http.Get("http://" + n.Addrs()[0].String() + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// writeTokenFile writes a token file holding token and returns its path.
func writeTokenFile(t *testing.T, token string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}

func TestAdminWithoutATokenInTheConfigGeneratesOne(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	n := startNode(t, "routes: [{name: all, respond: {status: 200, body: ok}}]\n", Options{}) // no admin block
	for _, path := range []string{"/stats", "/metrics", "/debug/pprof/", "/debug/pprof/heap"} {
		if status, _ := adminCall(t, n, "GET", path, ""); status != 401 {
			t.Errorf("GET %s without a token: %d, want 401", path, status)
		}
	}
	if status, _ := adminCall(t, n, "POST", "/reload", ""); status != 401 {
		t.Errorf("POST /reload without a token: %d, want 401", status)
	}

	file := filepath.Join(state, "outpost", "admin-token")
	if got, err := DefaultTokenFile(); err != nil || got != file {
		t.Fatalf("DefaultTokenFile = %q, %v; want %q", got, err, file)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %#o, want 0600", fi.Mode().Perm())
	}
	if di, _ := os.Stat(filepath.Dir(file)); di.Mode().Perm() != 0o700 {
		t.Errorf("state directory mode %#o, want 0700", di.Mode().Perm())
	}
	text, _ := os.ReadFile(file)
	token := lastLine(string(text))
	if len(token) != 64 {
		t.Fatalf("token %q: want 64 hex digits (32 random bytes)", token)
	}
	for _, path := range []string{"/stats", "/debug/pprof/"} {
		if status, _ := adminCall(t, n, "GET", path, "", "Authorization", "Bearer "+token); status != 200 {
			t.Errorf("GET %s with the generated token: %d", path, status)
		}
	}
	if status, _ := adminCall(t, n, "GET", "/healthz", ""); status != 200 {
		t.Errorf("GET /healthz needs no token, got %d", status)
	}

	// A second start reuses the file.
	n2 := startNode(t, "", Options{})
	if again, _ := os.ReadFile(file); string(again) != string(text) {
		t.Errorf("the token file changed on the second start")
	}
	if status, _ := adminCall(t, n2, "GET", "/stats", "", "Authorization", "Bearer "+token); status != 200 {
		t.Errorf("second node refuses the token: %d", status)
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func TestAdminRefusesATokenFileOthersCanRead(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	os.MkdirAll(filepath.Join(state, "outpost"), 0o700)
	os.WriteFile(filepath.Join(state, "outpost", "admin-token"), []byte("abc\n"), 0o644)
	cfg := config.Default()
	_, err := Start(cfg, Options{Log: slog.New(slog.DiscardHandler), Listeners: []net.Listener{listenLoopback(t)}, AdminListener: listenLoopback(t)})
	if err == nil || !strings.Contains(err.Error(), "open to other users") {
		t.Fatalf("Start with a world-readable token file: %v", err)
	}
}

func TestTokenIsComparedThroughItsDigest(t *testing.T) {
	creds, err := parseTokens("ops:s3cret\nci:other\n")
	if err != nil {
		t.Fatal(err)
	}
	if creds[0].digest != sha256.Sum256([]byte("s3cret")) {
		t.Fatalf("credential keeps %x, want the SHA-256 of the token", creds[0].digest)
	}
	for got, want := range map[string]string{"s3cret": "ops", "other": "ci", "s3cre": "", "s3cret ": "", "": ""} {
		if name := tokenOwner(creds, got); name != want {
			t.Errorf("tokenOwner(%q) = %q, want %q", got, name, want)
		}
	}
}

const csrfConfig = `routes: [{name: all, respond: {status: 200, body: "real"}}]
log: {access: "off"}
`

func TestAdminRefusesWhatABrowserCanBeMadeToSend(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	n := startNode(t, csrfConfig, Options{})
	before := n.Config()
	evil := "listeners: [{addr: \"127.0.0.1:0\"}]\nroutes: [{name: all, respond: {status: 200, body: \"attacker\"}}]\n"
	// What a page on evil.example can make a browser send: a text/plain
	// "simple request" to a name that resolves to the node, without a
	// token (the browser has none).
	status, body := adminCall(t, n, "POST", "/reload", evil,
		"Content-Type", "text/plain", "Origin", "http://evil.example", "Host", "evil.example:9090")
	if status < 400 {
		t.Fatalf("cross-site reload: %d %s", status, body)
	}
	if n.Config() != before || publicGet(t, n, "/") != "real" {
		t.Fatal("a cross-site reload changed the config")
	}
}

func TestAdminChecksHostOriginAndContentTypeEvenWithAToken(t *testing.T) {
	tokens := writeTokenFile(t, "s3cret")
	n := startNode(t, csrfConfig+"admin: {addr: \"127.0.0.1:9\", token_file: "+tokens+", hosts: [edge.internal]}\n", Options{})
	before := n.Config()
	auth := []string{"Authorization", "Bearer s3cret"}
	evil := "listeners: [{addr: \"127.0.0.1:0\"}]\nroutes: [{name: all, respond: {status: 200, body: \"attacker\"}}]\nadmin: {addr: \"127.0.0.1:9\", token_file: " + tokens + ", hosts: [edge.internal]}\n"
	for _, tc := range []struct {
		name   string
		header []string
		want   int
	}{
		{"text/plain body", []string{"Content-Type", "text/plain"}, 415},
		{"form body", []string{"Content-Type", "application/x-www-form-urlencoded"}, 415},
		{"no content type", nil, 415},
		{"foreign host", []string{"Content-Type", "application/yaml", "Host", "evil.example:9090"}, 421},
		{"foreign origin", []string{"Content-Type", "application/yaml", "Origin", "http://evil.example"}, 403},
		{"null origin", []string{"Content-Type", "application/yaml", "Origin", "null"}, 403},
		{"cross-site fetch", []string{"Content-Type", "application/yaml", "Sec-Fetch-Site", "cross-site"}, 403},
	} {
		if status, body := adminCall(t, n, "POST", "/reload", evil, append(tc.header, auth...)...); status != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, status, body, tc.want)
		}
	}
	if n.Config() != before || publicGet(t, n, "/") != "real" {
		t.Fatal("a refused reload changed the config")
	}
	// What the API's own clients send passes: no Origin or the API's own,
	// a loopback address, localhost or a name from admin.hosts.
	port := n.AdminAddr().(*net.TCPAddr).Port
	for _, h := range [][]string{
		{"Content-Type", "application/json", "Host", "localhost:" + strconv.Itoa(port)},
		{"Content-Type", "text/yaml; charset=utf-8", "Host", "[::1]:" + strconv.Itoa(port)},
		{"Content-Type", "application/x-yaml", "Host", "EDGE.internal"},
		{"Content-Type", "application/yaml", "Origin", "http://" + n.AdminAddr().String()},
	} {
		if status, body := adminCall(t, n, "POST", "/reload", evil, append(h, auth...)...); status != 200 {
			t.Errorf("%v: %d %s", h, status, body)
		}
	}
	if publicGet(t, n, "/") != "attacker" {
		t.Fatal("an accepted reload did not apply")
	}
}

func TestAdminBoundsTheReloadBodyAndSetsTimeouts(t *testing.T) {
	n := startNode(t, csrfConfig+"admin: {addr: \"127.0.0.1:9\", token_file: "+writeTokenFile(t, "s3cret")+"}\n", Options{})
	big := "# " + strings.Repeat("x", maxReloadBody) + "\n"
	if status, _ := adminCall(t, n, "POST", "/reload", big, "Content-Type", "application/yaml", "Authorization", "Bearer s3cret"); status != 413 {
		t.Errorf("reload body over %d bytes: %d, want 413", maxReloadBody, status)
	}
	hs := n.admin.hs
	if hs.ReadHeaderTimeout == 0 || hs.ReadTimeout == 0 || hs.WriteTimeout == 0 || hs.IdleTimeout == 0 || hs.MaxHeaderBytes == 0 {
		t.Errorf("admin server limits unset: %+v", hs)
	}
}
