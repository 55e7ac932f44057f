package e2e

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// edge is a node under test.
type edge struct {
	*node.Node
	URL   string // http://127.0.0.1:PORT
	Admin string // http://127.0.0.1:PORT
	file  string
}

// startEdge starts a node from a YAML config; "{{ORIGIN}}"-style
// placeholders are replaced by vars first. Listener and admin addresses
// default to ephemeral loopback ports.
func startEdge(t testing.TB, yaml string, vars ...string) *edge {
	t.Helper()
	return startEdgeWith(t, node.Options{}, yaml, vars...)
}

// startEdgeWith is startEdge with node options (an embedder's phases).
func startEdgeWith(t testing.TB, opts node.Options, yaml string, vars ...string) *edge {
	t.Helper()
	yaml = strings.NewReplacer(vars...).Replace(yaml)
	if !strings.Contains(yaml, "listeners:") {
		yaml = "listeners:\n  - addr: 127.0.0.1:0\n" + yaml
	}
	if !strings.Contains(yaml, "admin:") {
		yaml += adminBlock(t)
	}
	if !strings.Contains(yaml, "\nlog:") {
		yaml += "\nlog:\n  access: \"off\"\n"
	}
	file := t.TempDir() + "/outpost.yaml"
	if err := os.WriteFile(file, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatalf("config: %v\n%s", err, yaml)
	}
	opts.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	n, err := node.Start(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	e := &edge{Node: n, URL: "http://" + n.Addrs()[0].String(), file: file}
	if a := n.AdminAddr(); a != nil {
		e.Admin = "http://" + a.String()
	}
	return e
}

// adminToken is the admin API token of the nodes tests start; adminAuth
// is its Authorization field.
const (
	adminToken = "e2e-admin-token"
	adminAuth  = "Bearer " + adminToken
)

// adminBlock is an admin config on an ephemeral loopback port that takes
// adminToken.
func adminBlock(t testing.TB) string {
	t.Helper()
	file := t.TempDir() + "/admin-token"
	if err := os.WriteFile(file, []byte(adminToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return "\nadmin:\n  addr: 127.0.0.1:0\n  token_file: " + file + "\n"
}

// get fetches url and returns status, headers and body.
func get(t *testing.T, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		if strings.EqualFold(header[i], "Host") {
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s body: %v", url, err)
	}
	return resp, string(b)
}

var testClient = &http.Client{
	Timeout:   20 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true},
}

// listen returns a loopback listener on an ephemeral port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// dialRaw opens a TCP connection to addr for raw bytes, with a 5 s
// deadline, closed when the test ends.
func dialRaw(t testing.TB, addr string) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	return conn
}

// serve runs h on a new loopback listener and returns its address.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	l := listen(t)
	s := &http.Server{Handler: h}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

// metric returns the value of the first sample whose line starts with
// prefix in the node's /metrics, or -1.
func metric(t *testing.T, e *edge, prefix string) float64 {
	t.Helper()
	_, body := get(t, e.Admin+"/metrics", "Authorization", adminAuth)
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, prefix) {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			return v
		}
	}
	return -1
}
