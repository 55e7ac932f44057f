package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// purgeNode starts a caching node in this process with an admin token
// file, in front of an origin that counts its fetches and tags /t/<key>/...
// with Surrogate-Key <key>. It returns the node's address, its admin
// address, the token file and the fetch counter.
func purgeNode(t *testing.T) (addr, admin, tokens string, fetches *atomic.Int64) {
	t.Helper()
	fetches = new(atomic.Int64)
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		key, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/t/"), "/")
		w.Header().Set("Surrogate-Key", key)
		w.Header().Set("Cache-Control", "max-age=3600")
		io.WriteString(w, r.URL.Path)
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	originAddr := ln.Addr().String()
	go origin.Serve(ln)
	t.Cleanup(func() { origin.Close() })

	dir := t.TempDir()
	tokens = filepath.Join(dir, "tokens")
	os.WriteFile(tokens, []byte("# admin tokens\nci:ci-token\nops:ops-token\n"), 0o600)
	file := filepath.Join(dir, "outpost.yaml")
	os.WriteFile(file, []byte(fmt.Sprintf(`listeners: [{addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0", token_file: %s}
upstreams:
  origin: {servers: [{addr: "%s"}]}
routes:
  - {name: all, upstream: origin, cache: {enabled: true}}
storage: {memory: {size: 16MiB}}
log: {access: "off"}
`, tokens, originAddr)), 0o644)
	cfg, err := config.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, node.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		n.Shutdown(ctx)
	})
	return n.Addrs()[0].String(), n.AdminAddr().String(), tokens, fetches
}

func TestPurgeCommandPurgesThroughTheAdminAPI(t *testing.T) {
	addr, admin, tokens, fetches := purgeNode(t)
	fetch := func(path string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	bare := filepath.Join(t.TempDir(), "bare")
	os.WriteFile(bare, []byte("ops-token\n"), 0o600)
	cases := []struct {
		name    string
		args    []string
		env     string
		refetch bool   // the cached page is fetched again afterwards
		want    string // in the output, or in the error
		fails   bool
	}{
		{"key with the node's token file", []string{"--token-file", tokens, "--key", "k"}, "", true, `"objects": 1`, false},
		{"soft key", []string{"--token-file", tokens, "--key", "k", "--key", "other", "--soft"}, "", true, `"objects": 1`, false},
		{"url with a bare token file", []string{"--token-file", bare, "--url", "http://" + addr + "/t/k/page"}, "", true, `"objects": 1`, false},
		{"all with the token from the environment", []string{"--all"}, "ci-token", true, `"objects": 1`, false},
		{"wrong token", []string{"--key", "k"}, "wrong", false, "401", true},
		{"no token", []string{"--key", "k"}, "", false, "401", true},
		{"nothing to purge", []string{"--token-file", tokens}, "", false, "give --key, --url or --all", true},
		{"stray argument", []string{"--token-file", tokens, "k"}, "", false, "unexpected argument", true},
		{"bad URL", []string{"--token-file", tokens, "--url", "/t/k/page"}, "", false, "400", true},
	}
	t.Setenv("XDG_STATE_HOME", t.TempDir()) // no generated token
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("OUTPOST_ADMIN_TOKEN", tc.env)
			fetch("/t/k/page") // cached: fetched at most once
			before := fetches.Load()
			var out strings.Builder
			err := purgeTo(&out, append([]string{"--admin", admin}, tc.args...))
			got := out.String()
			if err != nil {
				got = err.Error()
			}
			if (err != nil) != tc.fails || !strings.Contains(got, tc.want) {
				t.Fatalf("purge %v: %q (error: %v), want %q", tc.args, got, err, tc.want)
			}
			fetch("/t/k/page")
			deadline := time.Now().Add(5 * time.Second)
			for tc.refetch && fetches.Load() == before && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond) // a soft purge refetches in the background
				fetch("/t/k/page")
			}
			if refetched := fetches.Load() > before; refetched != tc.refetch {
				t.Errorf("page refetched: %v, want %v", refetched, tc.refetch)
			}
		})
	}
}

func TestPurgeCommandFindsTheGeneratedToken(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	t.Setenv("OUTPOST_ADMIN_TOKEN", "")
	cfg, err := config.Parse("", []byte(`listeners: [{addr: "127.0.0.1:0"}]
admin: {addr: "127.0.0.1:0"}
log: {access: "off"}
`))
	if err != nil {
		t.Fatal(err)
	}
	n, err := node.Start(cfg, node.Options{Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Shutdown(t.Context())
	var out strings.Builder
	err = purgeTo(&out, []string{"--admin", n.AdminAddr().String(), "--all"})
	if err != nil || !strings.Contains(out.String(), `"objects"`) {
		t.Fatalf("purge with the generated token: %v %s", err, out.String())
	}
}
