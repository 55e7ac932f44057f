package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// fetchCounter counts the requests the origin gets, by path.
type fetchCounter struct {
	h  http.Handler
	mu sync.Mutex
	n  map[string]int
}

func (c *fetchCounter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	c.n[r.URL.Path]++
	c.mu.Unlock()
	c.h.ServeHTTP(w, r)
}

func (c *fetchCounter) count(path string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[path]
}

// startExample runs the shipped config on ephemeral loopback ports in
// front of the example origin and returns the edge's URL and the origin's
// fetch counter.
func startExample(t *testing.T) (string, *fetchCounter) {
	t.Helper()
	const token = "example-token"
	t.Setenv("OUTPOST_ADMIN_TOKEN", token)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile("package-index.yaml")
	if err != nil {
		t.Fatal(err)
	}
	yaml := strings.NewReplacer("127.0.0.1:8080", "127.0.0.1:0", "127.0.0.1:9090", "127.0.0.1:0",
		"127.0.0.1:8081", ln.Addr().String(), "access: stdout", `access: "off"`).Replace(string(text))
	cfg, err := config.Parse("package-index.yaml", []byte(yaml))
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
	// The origin serves once it knows where the edge's admin API is.
	counter := &fetchCounter{h: newOrigin(&edgeAdmin{url: "http://" + n.AdminAddr().String(), token: token}), n: map[string]int{}}
	s := &http.Server{Handler: counter}
	go s.Serve(ln)
	t.Cleanup(func() { s.Close() })
	return "http://" + n.Addrs()[0].String(), counter
}

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 100}}

func fetch(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

var fileLink = regexp.MustCompile(`href="(/packages/[^"#]+)`)

func TestUploadSoftPurgesThePageOnceAndKeepsTheFiles(t *testing.T) {
	edge, origin := startExample(t)
	// Idle keep-alive connections can hold the node's shutdown until its
	// deadline; closing them first keeps the test fast.
	t.Cleanup(client.CloseIdleConnections)
	const page = "/simple/requests/"
	_, body := fetch(t, "GET", edge+page)
	var files []string
	for _, m := range fileLink.FindAllStringSubmatch(body, -1) {
		files = append(files, m[1])
	}
	if len(files) != 2 {
		t.Fatalf("the page links %d files, want the 2 seeded releases:\n%s", len(files), body)
	}
	for _, path := range append([]string{page}, files...) {
		fetch(t, "GET", edge+path)
		if resp, _ := fetch(t, "GET", edge+path); !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Fatalf("%s not cached: %q", path, resp.Header.Get("Cache-Status"))
		}
	}

	resp, _ := fetch(t, "POST", edge+"/_upload/requests/2.33.0")
	uploaded := time.Now()
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(resp.Header.Get("Purge"), "soft; keys=project/requests") {
		t.Fatalf("upload: %d, Purge %q", resp.StatusCode, resp.Header.Get("Purge"))
	}

	// Many clients ask for the page at once: all see the new release
	// within a second, and the origin renders the page once.
	const clients = 64
	var wg sync.WaitGroup
	late := make(chan time.Duration, clients)
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Since(uploaded) < 2*time.Second {
				resp, err := client.Get(edge + page)
				if err != nil {
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if strings.Contains(string(b), "requests-2.33.0.tar.gz") {
					return
				}
			}
			late <- time.Since(uploaded)
		}()
	}
	wg.Wait()
	t.Logf("%d clients saw the new release %v after the upload returned", clients, time.Since(uploaded))
	if took := time.Since(uploaded); len(late) > 0 || took > time.Second {
		t.Errorf("%d of %d clients did not see the new release; all done after %v, want within 1s", len(late), clients, took)
	}
	if n := origin.count(page); n != 2 {
		t.Errorf("the origin rendered the page %d times after the upload, want 1", n-1)
	}
	for _, f := range files {
		resp, _ := fetch(t, "GET", edge+f)
		if n := origin.count(f); n != 1 || !strings.Contains(resp.Header.Get("Cache-Status"), "hit") {
			t.Errorf("old file %s: fetched %d times from the origin, Cache-Status %q: it should have stayed cached", f, n, resp.Header.Get("Cache-Status"))
		}
	}
}
