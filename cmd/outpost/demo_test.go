package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/node"
)

func TestDemoAnswersAReloadWithWhatToDoInstead(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // the demo's generated admin token
	origin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer origin.Close()
	cfg, err := parseDemoConfig(origin.Addr())
	if err != nil {
		t.Fatal(err)
	}
	// The demo's own addresses are fixed; the test's are ephemeral.
	cfg.Listeners[0].Addr, cfg.Admin.Addr, cfg.Log.Access = "127.0.0.1:0", "127.0.0.1:0", "off"
	if err := cfg.Provision(); err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, node.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	}()
	file, err := node.DefaultTokenFile()
	if err != nil {
		t.Fatal(err)
	}
	token, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(token)), "\n")
	req, _ := http.NewRequest("POST", "http://"+n.AdminAddr().String()+"/reload", nil)
	req.Header.Set("Authorization", "Bearer "+lines[len(lines)-1])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var answer struct{ Error string }
	json.Unmarshal(body, &answer)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(answer.Error, "no config file to reload") ||
		!strings.Contains(answer.Error, "outpost run -c FILE") {
		t.Fatalf("POST /reload on the demo: %d %s, want 409 saying to start outpost with a config file", resp.StatusCode, body)
	}
}
