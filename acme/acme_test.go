package acme

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/outpost-edge/outpost/config"
)

// On demand, only the configured domains, one label under a wildcard
// host, or what the ask URL approves may get a certificate.
func TestOnDemandAllowsOnlyListedOrApprovedNames(t *testing.T) {
	var asked []string
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked = append(asked, r.URL.Query().Get("domain"))
		if r.URL.Query().Get("domain") != "approved.example.org" {
			w.WriteHeader(http.StatusNotFound)
		}
	}))
	defer ask.Close()
	for _, tt := range []struct {
		od      config.ACMEOnDemand
		name    string
		allowed bool
	}{
		{config.ACMEOnDemand{Hosts: []string{"*.shop.example.org"}}, "a.shop.example.org", true},
		{config.ACMEOnDemand{Hosts: []string{"*.shop.example.org"}}, "A.Shop.Example.org", true},
		{config.ACMEOnDemand{Hosts: []string{"*.shop.example.org"}}, "a.b.shop.example.org", false},
		{config.ACMEOnDemand{Hosts: []string{"*.shop.example.org"}}, "shop.example.org", false},
		{config.ACMEOnDemand{Hosts: []string{"*.shop.example.org"}}, "www.example.org", true}, // in domains
		{config.ACMEOnDemand{Ask: ask.URL}, "approved.example.org", true},
		{config.ACMEOnDemand{Ask: ask.URL}, "evil.example.org", false},
		{config.ACMEOnDemand{Ask: "http://127.0.0.1:1/"}, "approved.example.org", false}, // the ask URL is down
	} {
		err := allow([]string{"www.example.org"}, &tt.od)(context.Background(), tt.name)
		if (err == nil) != tt.allowed {
			t.Errorf("%+v %s: %v, want allowed=%v", tt.od, tt.name, err, tt.allowed)
		}
	}
	if len(asked) != 2 {
		t.Errorf("asked %v: the ask URL is for names not listed only", asked)
	}
}

// While the ask endpoint is slow, handshakes for unknown names beyond
// maxAsks are refused at once instead of piling up asks.
func TestOnDemandBoundsTheAsksInFlight(t *testing.T) {
	release := make(chan struct{})
	var inFlight, most atomic.Int64
	ask := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := inFlight.Add(1)
		for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		<-release
		inFlight.Add(-1)
	}))
	defer ask.Close()
	decide := allow(nil, &config.ACMEOnDemand{Ask: ask.URL})
	errs := make(chan error, maxAsks+8)
	for i := range maxAsks + 8 {
		go func() { errs <- decide(context.Background(), fmt.Sprintf("n%d.example.org", i)) }()
	}
	refused := 0
	for range 8 { // the ones over the bound come back while the others wait
		if err := <-errs; err != nil {
			refused++
		}
	}
	close(release)
	for range maxAsks {
		if err := <-errs; err != nil {
			t.Errorf("an ask within the bound failed: %v", err)
		}
	}
	if refused != 8 || most.Load() > maxAsks {
		t.Errorf("%d refused, %d asks at once; want 8 and at most %d", refused, most.Load(), maxAsks)
	}
}

func TestStorageOpenToOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := privateDir(dir); err == nil {
		t.Error("a storage directory readable by others was accepted")
	}
	if err := privateDir(filepath.Join(dir, "acme")); err != nil {
		t.Errorf("a new directory: %v", err)
	}
}
