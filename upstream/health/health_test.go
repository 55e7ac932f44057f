package health

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// scripted answers each probe of an address with the next result in its
// script, failing once the script runs out.
type scripted struct {
	mu      sync.Mutex
	results map[string][]bool
}

func (s *scripted) Probe(_ context.Context, addr string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.results[addr]
	if len(r) == 0 || !r[0] {
		s.results[addr] = r[min(1, len(r)):]
		return errors.New("down")
	}
	s.results[addr] = r[1:]
	return nil
}

// recorder is an Observer that remembers every change.
type recorder struct {
	mu      sync.Mutex
	changes []string
}

func (r *recorder) observe(addr string, healthy bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	verdict := "down"
	if healthy {
		verdict = "up"
	}
	r.changes = append(r.changes, addr+" "+verdict)
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.changes)
}

func TestRiseAndFallThresholds(t *testing.T) {
	const o, x = true, false
	tests := []struct {
		name    string
		rise    int
		fall    int
		probes  []bool
		changes []string // observer calls, by round number
	}{
		{"two failures are not enough to fall", 2, 3, []bool{x, x, o, x, x, o}, nil},
		{"three failures in a row fall", 2, 3, []bool{o, x, x, x, o}, []string{"3:a down"}},
		{"rise needs two good probes in a row", 2, 3, []bool{x, x, x, o, x, o, o}, []string{"2:a down", "6:a up"}},
		{"fall of one and rise of one flip at once", 1, 1, []bool{x, o, x}, []string{"0:a down", "1:a up", "2:a down"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			round := 0
			c, err := New(Config{Rise: tt.rise, Fall: tt.fall},
				&scripted{results: map[string][]bool{"a": tt.probes}},
				func(addr string, healthy bool) {
					verdict := "down"
					if healthy {
						verdict = "up"
					}
					got = append(got, string(rune('0'+round))+":"+addr+" "+verdict)
				}, quiet)
			if err != nil {
				t.Fatal(err)
			}
			c.SetTargets([]string{"a"})
			for round = range tt.probes {
				c.Check(context.Background())
			}
			if !slices.Equal(got, tt.changes) {
				t.Fatalf("changes %q, want %q", got, tt.changes)
			}
		})
	}
}

// switchable is a loopback HTTP server that answers with a status the test
// sets, and can be stopped and restarted on the same address.
type switchable struct {
	status atomic.Int32
	addr   string
	mu     sync.Mutex
	srv    *httptest.Server
}

func newSwitchable(t *testing.T) *switchable {
	s := &switchable{}
	s.status.Store(200)
	s.start(t, "127.0.0.1:0")
	t.Cleanup(s.stop)
	return s
}

func (s *switchable) start(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			w.WriteHeader(404)
			return
		}
		w.WriteHeader(int(s.status.Load()))
	}))
	srv.Listener = ln
	srv.Start()
	s.mu.Lock()
	s.srv, s.addr = srv, ln.Addr().String()
	s.mu.Unlock()
}

func (s *switchable) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		s.srv.Close()
		s.srv = nil
	}
}

func TestProbesFollowRealServersGoingDownAndUp(t *testing.T) {
	for _, tt := range []struct {
		name  string
		probe Probe
		down  func(t *testing.T, s *switchable)
		up    func(t *testing.T, s *switchable)
	}{
		{
			"HTTP status leaves the healthy range",
			&HTTP{Path: "/healthz"},
			func(_ *testing.T, s *switchable) { s.status.Store(503) },
			func(_ *testing.T, s *switchable) { s.status.Store(204) },
		},
		{
			"HTTP server stops listening",
			&HTTP{Path: "/healthz"},
			func(_ *testing.T, s *switchable) { s.stop() },
			func(t *testing.T, s *switchable) { s.start(t, s.addr) },
		},
		{
			"TCP server stops listening",
			TCP{},
			func(_ *testing.T, s *switchable) { s.stop() },
			func(t *testing.T, s *switchable) { s.start(t, s.addr) },
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newSwitchable(t)
			var rec recorder
			c, err := New(Config{Rise: 2, Fall: 2, Timeout: time.Second}, tt.probe, rec.observe, quiet)
			if err != nil {
				t.Fatal(err)
			}
			c.SetTargets([]string{s.addr})
			ctx := context.Background()
			c.Check(ctx)
			tt.down(t, s)
			c.Check(ctx)
			if len(rec.list()) != 0 {
				t.Fatalf("down after one failure: %v", rec.list())
			}
			c.Check(ctx)
			tt.up(t, s)
			c.Check(ctx)
			if h, _ := c.Healthy(s.addr); h {
				t.Fatal("up after one good probe")
			}
			c.Check(ctx)
			want := []string{s.addr + " down", s.addr + " up"}
			if got := rec.list(); !slices.Equal(got, want) {
				t.Fatalf("changes %v, want %v", got, want)
			}
		})
	}
}

func TestHTTPProbeChecksStatusRange(t *testing.T) {
	s := newSwitchable(t)
	ctx := context.Background()
	for _, tt := range []struct {
		status  int32
		probe   *HTTP
		healthy bool
	}{
		{200, &HTTP{Path: "/healthz"}, true},
		{200, &HTTP{Path: "healthz"}, true},
		{302, &HTTP{Path: "/healthz"}, true},
		{404, &HTTP{Path: "/healthz"}, false},
		{500, &HTTP{Path: "/healthz"}, false},
		{200, &HTTP{Path: "/other"}, false},
		{404, &HTTP{Path: "/healthz", MinStatus: 404, MaxStatus: 404}, true},
		{200, &HTTP{Path: "/healthz", MinStatus: 204, MaxStatus: 204}, false},
	} {
		s.status.Store(tt.status)
		err := tt.probe.Probe(ctx, s.addr)
		if (err == nil) != tt.healthy {
			t.Errorf("status %d, probe %+v: err %v, want healthy %v", tt.status, tt.probe, err, tt.healthy)
		}
		if err != nil && tt.status != 200 && !errors.Is(err, ErrStatus) {
			t.Errorf("status %d: error %v does not wrap ErrStatus", tt.status, err)
		}
	}
}

func TestProbeTimesOutOnAServerThatNeverAnswers(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // accept and hold connections without answering
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	var rec recorder
	c, err := New(Config{Fall: 1, Timeout: 50 * time.Millisecond}, &HTTP{}, rec.observe, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTargets([]string{ln.Addr().String()})
	done := make(chan struct{})
	go func() {
		c.Check(context.Background())
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("check did not give up on a silent server")
	}
	if got := rec.list(); len(got) != 1 {
		t.Fatalf("changes %v, want the server down", got)
	}
}

type panicking struct{}

func (panicking) Probe(context.Context, string) error { panic("broken check") }

func TestPanickingProbeCountsAsFailure(t *testing.T) {
	var rec recorder
	c, err := New(Config{Fall: 1}, panicking{}, rec.observe, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTargets([]string{"a"})
	c.Check(context.Background())
	if got := rec.list(); !slices.Equal(got, []string{"a down"}) {
		t.Fatalf("changes %v", got)
	}
}

func TestSetTargetsKeepsStateOfTargetsThatRemain(t *testing.T) {
	var rec recorder
	c, err := New(Config{Fall: 1}, &scripted{results: map[string][]bool{}}, rec.observe, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTargets([]string{"a", "b"})
	c.Check(context.Background())
	c.SetTargets([]string{"b", "c"})
	if h, known := c.Healthy("b"); h || !known {
		t.Errorf("b: healthy %v known %v, want kept down", h, known)
	}
	if h, known := c.Healthy("c"); !h || !known {
		t.Errorf("c: healthy %v known %v, want new and up", h, known)
	}
	if _, known := c.Healthy("a"); known {
		t.Error("a still a target")
	}
}

func TestRunChecksOnATickerAndStopsWithItsContext(t *testing.T) {
	s := newSwitchable(t)
	var rec recorder
	c, err := New(Config{Interval: 5 * time.Millisecond, Rise: 1, Fall: 1}, &HTTP{Path: "/healthz"}, rec.observe, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTargets([]string{s.addr})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	s.status.Store(500)
	waitFor(t, func() bool { return len(rec.list()) == 1 })
	s.status.Store(200)
	waitFor(t, func() bool { return len(rec.list()) == 2 })
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tt := range []struct {
		cfg   Config
		probe Probe
		obs   Observer
	}{
		{Config{Rise: -1}, TCP{}, func(string, bool) {}},
		{Config{}, nil, func(string, bool) {}},
		{Config{}, TCP{}, nil},
	} {
		if _, err := New(tt.cfg, tt.probe, tt.obs, quiet); err == nil {
			t.Errorf("New(%+v) accepted", tt.cfg)
		}
	}
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

func TestRunSurvivesAPanickingObserver(t *testing.T) {
	var calls atomic.Int32
	c, err := New(Config{Interval: time.Millisecond, Fall: 1, Rise: 1},
		&scripted{results: map[string][]bool{"a": {false, true, false, true}}},
		func(string, bool) {
			calls.Add(1)
			panic("observer bug")
		}, quiet)
	if err != nil {
		t.Fatal(err)
	}
	c.SetTargets([]string{"a"})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	waitFor(t, func() bool { return calls.Load() >= 2 })
	cancel()
	<-done
}

func TestJitterStaysWithinTenPercent(t *testing.T) {
	for range 1000 {
		if d := jitter(10 * time.Second); d < 9*time.Second || d > 11*time.Second {
			t.Fatalf("jitter(10s) = %v", d)
		}
	}
	if d := jitter(3); d != 3 {
		t.Fatalf("jitter(3ns) = %v", d)
	}
}
