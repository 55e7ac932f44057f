package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
)

// origin answers name, cacheable for ten minutes.
func origin(t *testing.T, name string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age=600")
		io.WriteString(w, name)
	})}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

func TestCanaryPhaseRoutesByHeaderWithoutSharingCachedPagesAndEarlyPhaseAnswers(t *testing.T) {
	yaml := strings.NewReplacer("127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:8081", origin(t, "stable"), "127.0.0.1:8082", origin(t, "canary")).
		Replace(mustRead(t, "embed.yaml")) + "\nadmin: {addr: \"\"}\nlog: {access: \"off\"}\n"
	cfg, err := config.Parse("embed.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	n, err := start(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	}()
	base := "http://" + n.Addrs()[0].String()
	// Both routes cache. The cache key starts with the route, so the
	// canary's page for /y is never served to stable users, nor the
	// reverse, whichever comes first.
	for _, tc := range []struct{ path, canary, want string }{
		{"/x", "", "stable"},
		{"/x", "1", "canary"},
		{"/x", "", "stable"},
		{"/y", "1", "canary"},
		{"/y", "", "stable"},
		{"/y", "", "stable"},
		{"/y", "1", "canary"},
		{"/whoami", "", "127.0.0.1"},
	} {
		req, _ := http.NewRequest("GET", base+tc.path, nil)
		if tc.canary != "" {
			req.Header.Set("X-Canary", tc.canary)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.HasPrefix(string(b), tc.want) {
			t.Errorf("%s canary=%q: got %q, want %q", tc.path, tc.canary, b, tc.want)
		}
	}
}

func mustRead(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
