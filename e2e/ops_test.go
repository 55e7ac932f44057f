package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

func postReload(t *testing.T, e *edge, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("POST", e.Admin+"/reload", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/yaml")
	req.Header.Set("Authorization", adminAuth)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReloadIsAtomicAndRefusesABrokenConfig(t *testing.T) {
	a := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "A") }))
	b := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "B") }))
	e := startEdge(t, oneRoute, "{{ORIGIN}}", a)
	cfg, _ := os.ReadFile(e.file)

	broken := strings.Replace(string(cfg), "upstream: origin", "upstream: nowhere", 1)
	status, body := postReload(t, e, broken)
	if status != 422 || !strings.Contains(body, "nowhere") {
		t.Fatalf("broken config: %d %s", status, body)
	}
	if _, got := get(t, e.URL+"/x"); got != "A" {
		t.Fatalf("after a refused reload, served %q", got)
	}

	status, body = postReload(t, e, strings.Replace(string(cfg), a, b, 1))
	if status != 200 {
		t.Fatalf("good config: %d %s", status, body)
	}
	if _, got := get(t, e.URL+"/x"); got != "B" {
		t.Fatalf("after reload, served %q", got)
	}

	// A listener cannot move while running: refused by name.
	moved := strings.Replace(strings.Replace(string(cfg), a, b, 1), "addr: 127.0.0.1:0\n", "addr: 127.0.0.1:1\n", 1)
	if status, body := postReload(t, e, moved); status != 422 || !strings.Contains(body, "listeners cannot change") {
		t.Fatalf("moved listener: %d %s", status, body)
	}
}

func TestShutdownDrainsInFlightRequests(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 4)
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
		io.WriteString(w, "finished")
	}))
	e := startEdge(t, oneRoute+"\n    cache: {enabled: false}\n", "{{ORIGIN}}", origin)
	var wg sync.WaitGroup
	results := make(chan string, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(e.URL + "/slow")
			if err != nil {
				results <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results <- string(b)
		}()
	}
	for i := 0; i < 4; i++ {
		<-arrived
	}
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- e.Shutdown(ctx)
	}()
	waitFor(t, func() bool {
		resp, err := http.Get(e.Admin + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503
	})
	if _, err := http.Get(e.URL + "/new"); err == nil {
		t.Error("a new connection was accepted while draining")
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	wg.Wait()
	close(results)
	for r := range results {
		if r != "finished" {
			t.Errorf("in-flight request got %q", r)
		}
	}
}

// waitFor polls cond until it holds, for at most 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
