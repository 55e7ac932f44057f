package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
)

// reloadYAML parses a config for a reload of n, keeping its listener.
func reloadYAML(t *testing.T, n *Node, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse(n.Config().File, []byte("listeners: [{addr: \"127.0.0.1:0\"}]\n"+yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestReloadAppliesTheLogLevelAndFormat(t *testing.T) {
	const base = "admin: {addr: \"\"}\nroutes: [{name: all, respond: {status: 200, body: ok}}]\n"
	var out syncBuffer
	n := startNode(t, base+"log: {access: \"off\", level: info, format: json}\n", Options{LogOutput: &out})
	n.Log.Debug("probe-before")
	if err := n.Reload(reloadYAML(t, n, base+"log: {access: \"off\", level: debug, format: text}\n")); err != nil {
		t.Fatal(err)
	}
	n.Log.Debug("probe-after")
	got := out.String()
	if strings.Contains(got, "probe-before") {
		t.Errorf("a debug line at level info:\n%s", got)
	}
	if !strings.Contains(got, "level=DEBUG msg=probe-after") {
		t.Errorf("after the reload to debug and text, no debug line in text:\n%s", got)
	}
	if !strings.Contains(got, `changed="log.format log.level"`) {
		t.Errorf("the reload does not log what changed:\n%s", got)
	}
}

func TestReloadReopensTheAccessLog(t *testing.T) {
	dir := t.TempDir()
	first, second := filepath.Join(dir, "first.log"), filepath.Join(dir, "second.log")
	const base = "admin: {addr: \"\"}\nroutes: [{name: all, respond: {status: 200, body: ok}}]\n"
	n := startNode(t, base+"log: {access: "+first+"}\n", Options{})
	publicGet(t, n, "/one")
	if err := n.Reload(reloadYAML(t, n, base+"log: {access: "+second+"}\n")); err != nil {
		t.Fatal(err)
	}
	publicGet(t, n, "/two")
	// Access logs are flushed every second.
	deadline := time.Now().Add(5 * time.Second)
	for {
		a, _ := os.ReadFile(first)
		b, _ := os.ReadFile(second)
		if strings.Contains(string(a), "/one") && strings.Contains(string(b), "/two") && !strings.Contains(string(a), "/two") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("first log:\n%s\nsecond log:\n%s", a, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestReloadRefusesWhatItCannotApplyByName(t *testing.T) {
	db := filepath.Join(t.TempDir(), "country.mmdb")
	os.WriteFile(db, []byte("not opened: the reload is refused first"), 0o644)
	n := startNode(t, "admin: {addr: \"\"}\nstorage: {memory: {size: 1MiB}}\n", Options{})
	before := n.Config()
	cfg, err := config.Parse(before.File, []byte(`listeners: [{addr: "127.0.0.1:1"}]
admin: {addr: ""}
storage: {memory: {size: 2MiB}}
protection: {geoip: {database: `+db+`}}
`))
	if err != nil {
		t.Fatal(err)
	}
	err = n.Reload(cfg)
	for _, key := range []string{"listeners[0].addr", "storage.memory.size", "protection.geoip.database"} {
		if err == nil || !strings.Contains(err.Error(), "reload refused: "+key+": ") {
			t.Errorf("reload error does not name %s: %v", key, err)
		}
	}
	if n.Config() != before {
		t.Error("a refused reload changed the config")
	}
}
