package acme

import (
	"context"
	"net/http"
	"net/http/httptest"
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
