package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestAccessLogMetricsAndTraceRecordEachRequest(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=60")
		io.WriteString(w, "hello")
	}))
	logFile := filepath.Join(t.TempDir(), "access.log")
	e := startEdge(t, oneRoute+"\nlog:\n  access: "+logFile+"\n", "{{ORIGIN}}", origin)

	get(t, e.URL+"/page?x=1")
	resp, _ := get(t, e.URL+"/page?x=1", "X-Outpost-Trace", "1", "User-Agent", "tester \"quoted\"")
	tr := resp.Header.Get("X-Outpost-Trace")
	for _, want := range []string{"route=all", "cache=hit", "total="} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace %q lacks %q", tr, want)
		}
	}
	if got := resp.Header.Get("Cache-Status"); !strings.Contains(got, "hit") {
		t.Errorf("Cache-Status %q", got)
	}
	// A request is counted in its Logging phase, just after its response
	// has gone out: wait for it.
	waitFor(t, func() bool { return metric(t, e, `outpost_requests_total{code="2xx",route="all"}`) == 2 })
	if n := metric(t, e, "outpost_cache_hits_total"); n != 1 {
		t.Errorf("cache hits metric = %v, want 1", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Shutdown(ctx) // flushes the access log
	data, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d access log lines:\n%s", len(lines), data)
	}
	var rec map[string]any
	if err := json.Unmarshal([]byte(lines[1]), &rec); err != nil {
		t.Fatalf("not JSON: %v: %s", err, lines[1])
	}
	for k, want := range map[string]any{"method": "GET", "path": "/page", "status": 200.0, "route": "all", "cache": "hit", "client": "127.0.0.1", "ua": "tester \"quoted\""} {
		if rec[k] != want {
			t.Errorf("access log %s = %v, want %v", k, rec[k], want)
		}
	}
	if rec["id"] == "" || rec["ms"] == nil {
		t.Errorf("access log lacks id or duration: %v", rec)
	}
}
