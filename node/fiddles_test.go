package node

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestFiddlesSurviveRestart: a fiddle saved on the admin listener is
// there after the node restarts, in admin.fiddle_dir or, by default, in
// the state directory; the files are 0600 in a 0700 directory.
func TestFiddlesSurviveRestart(t *testing.T) {
	state := t.TempDir()
	t.Setenv("XDG_STATE_HOME", state)
	tokens := writeTokenFile(t, "s3cret")
	own := filepath.Join(t.TempDir(), "saved")
	for _, c := range []struct{ yaml, dir string }{
		{"", filepath.Join(state, "outpost", "fiddles")},
		{", fiddle_dir: " + own, own},
	} {
		yaml := `admin: {addr: "127.0.0.1:9", token_file: ` + tokens + c.yaml + `}
log: {access: "off"}
routes: [{name: all, respond: {status: 204}}]
`
		auth := []string{"Content-Type", "application/json", "Authorization", "Bearer s3cret"}
		n := startNode(t, yaml, Options{})
		status, body := adminCall(t, n, "POST", "/fiddle/api/fiddles",
			`{"name": "kept", "config": "routes: []\n", "requests": [{"url": "http://x.test/"}]}`, auth...)
		var saved struct{ ID string }
		if err := json.Unmarshal([]byte(body), &saved); status != 200 || err != nil || saved.ID == "" {
			t.Fatalf("save: %d %s", status, body)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		n.Shutdown(ctx)
		cancel()

		n = startNode(t, yaml, Options{})
		status, body = adminCall(t, n, "GET", "/fiddle/api/fiddles/"+saved.ID, "", auth...)
		if status != 200 || !strings.Contains(body, `"name":"kept"`) {
			t.Errorf("%s: after a restart: %d %s", c.dir, status, body)
		}
		dir, err := os.Stat(c.dir)
		if err != nil {
			t.Fatal(err)
		}
		file, err := os.Stat(filepath.Join(c.dir, saved.ID+".json"))
		if err != nil {
			t.Fatal(err)
		}
		if dir.Mode().Perm() != 0o700 || file.Mode().Perm() != 0o600 {
			t.Errorf("%s: directory %v, file %v; want 0700 and 0600", c.dir, dir.Mode().Perm(), file.Mode().Perm())
		}
	}
}
