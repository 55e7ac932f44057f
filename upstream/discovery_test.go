package upstream

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// fakeResolver answers from maps that a test changes between rounds.
type fakeResolver struct {
	mu   sync.Mutex
	ips  map[string][]string
	srv  map[string][]*net.SRV
	down bool
}

func (r *fakeResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return nil, errors.New("dns down")
	}
	list, ok := r.ips[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, s := range list {
		out = append(out, netip.MustParseAddr(s))
	}
	return out, nil
}

func (r *fakeResolver) LookupSRV(_ context.Context, _, _, name string) (string, []*net.SRV, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		return "", nil, errors.New("dns down")
	}
	return name, r.srv[name], nil
}

func (r *fakeResolver) set(host string, ips ...string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ips[host] = ips
}

func addrsOf(b *Backend) []string {
	var out []string
	for _, s := range b.Servers() {
		out = append(out, s.Addr)
	}
	return out
}

func TestDiscoveryFollowsDNSChangesAndKeepsState(t *testing.T) {
	r := &fakeResolver{ips: map[string][]string{"origin.test": {"192.0.2.1", "2001:db8::1"}}}
	changes := 0
	d := &Discovery{
		Static:   []*Server{{Addr: "static:80", Backup: true}},
		Names:    []Name{{Host: "origin.test", Port: 8080}},
		Resolver: r,
		Log:      quiet,
		Changed:  func(*Backend) { changes++ },
	}
	b := newBackend(t, Config{}, nil)
	ctx := context.Background()
	if err := d.Refresh(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(b); !slices.Equal(got, []string{"192.0.2.1:8080", "[2001:db8::1]:8080", "static:80"}) {
		t.Fatalf("servers %v", got)
	}
	b.SetHealthy("192.0.2.1:8080", false)
	before := b.set.Load()
	if err := d.Refresh(ctx, b); err != nil {
		t.Fatal(err)
	}
	if b.set.Load() != before || changes != 1 {
		t.Fatalf("an unchanged answer rebuilt the set (%d changes)", changes)
	}

	r.set("origin.test", "192.0.2.1", "192.0.2.2")
	if err := d.Refresh(ctx, b); err != nil {
		t.Fatal(err)
	}
	if got := addrsOf(b); !slices.Equal(got, []string{"192.0.2.1:8080", "192.0.2.2:8080", "static:80"}) {
		t.Fatalf("servers after change %v", got)
	}
	if b.Stats(nil)[0].Healthy {
		t.Error("192.0.2.1 lost its unhealthy state across the change")
	}
	if changes != 2 {
		t.Errorf("Changed called %d times, want 2", changes)
	}

	// A DNS failure keeps the last good set.
	r.mu.Lock()
	r.down = true
	r.mu.Unlock()
	if err := d.Refresh(ctx, b); err == nil {
		t.Fatal("Refresh succeeded with DNS down")
	}
	if got := len(b.Servers()); got != 3 {
		t.Fatalf("%d servers after DNS failure, want the 3 kept", got)
	}
}

func TestDiscoveryNeverEmptiesABackendBecauseOfFailures(t *testing.T) {
	r := &fakeResolver{down: true}
	d := &Discovery{Names: []Name{{Host: "a.test", Port: 80}}, Resolver: r}
	b := newBackend(t, Config{}, servers("192.0.2.9:80"))
	if err := d.Refresh(context.Background(), b); err == nil {
		t.Fatal("Refresh succeeded with DNS down")
	}
	if got := addrsOf(b); !slices.Equal(got, []string{"192.0.2.9:80"}) {
		t.Fatalf("servers %v, want the backend's own kept", got)
	}
}

func TestDiscoveryKeepsAFailingNameAndUpdatesTheOthers(t *testing.T) {
	r := &fakeResolver{ips: map[string][]string{"a.test": {"192.0.2.1"}, "b.test": {"192.0.2.2"}}}
	d := &Discovery{Names: []Name{{Host: "a.test", Port: 80}, {Host: "b.test", Port: 80}}, Resolver: r}
	b := newBackend(t, Config{}, nil)
	ctx := context.Background()
	if err := d.Refresh(ctx, b); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	delete(r.ips, "a.test")
	r.ips["b.test"] = []string{"192.0.2.3"}
	r.mu.Unlock()
	err := d.Refresh(ctx, b)
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) || dnsErr.Name != "a.test" {
		t.Fatalf("Refresh error %v, want a.test's lookup failure", err)
	}
	if got := addrsOf(b); !slices.Equal(got, []string{"192.0.2.1:80", "192.0.2.3:80"}) {
		t.Fatalf("servers %v, want a.test's last known and b.test's new address", got)
	}
}

func TestDiscoveryMapsSRVPriorityToBackupsAndWeights(t *testing.T) {
	r := &fakeResolver{
		ips: map[string][]string{"a.test.": {"192.0.2.10"}, "b.test.": {"192.0.2.11"}, "c.test.": {"192.0.2.12"}},
		srv: map[string][]*net.SRV{"_http._tcp.origin.test": {
			{Target: "a.test.", Port: 80, Priority: 10, Weight: 60},
			{Target: "b.test.", Port: 81, Priority: 10, Weight: 0},
			{Target: "c.test.", Port: 82, Priority: 20, Weight: 5},
		}},
	}
	d := &Discovery{Names: []Name{{Host: "_http._tcp.origin.test", SRV: true}}, Resolver: r}
	got, err := d.Resolve(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []Server{
		{Addr: "192.0.2.10:80", Weight: 60},
		{Addr: "192.0.2.11:81", Weight: 1},
		{Addr: "192.0.2.12:82", Weight: 5, Backup: true},
	}
	if len(got) != len(want) {
		t.Fatalf("servers %v", got)
	}
	for i, w := range want {
		if g := got[i]; g.Addr != w.Addr || g.Weight != w.Weight || g.Backup != w.Backup {
			t.Errorf("server %d = %+v, want %+v", i, *g, w)
		}
	}
}

func TestDiscoveryRunRefreshesUntilCanceled(t *testing.T) {
	r := &fakeResolver{ips: map[string][]string{"origin.test": {"192.0.2.1"}}}
	d := &Discovery{Names: []Name{{Host: "origin.test", Port: 80}}, Resolver: r, Interval: time.Millisecond, Log: quiet}
	b := newBackend(t, Config{}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		d.Run(ctx, b)
	}()
	waitFor(t, func() bool { return len(b.Servers()) == 1 })
	r.set("origin.test", "192.0.2.1", "192.0.2.2")
	waitFor(t, func() bool { return len(b.Servers()) == 2 })
	cancel()
	<-done
}

// waitFor polls cond until it holds, failing the test after 5 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(time.Millisecond) // polling, not timing
	}
}
