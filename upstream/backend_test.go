package upstream

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// fail reports n failures of the outcome on the server with the address,
// as single-attempt requests would.
func fail(t *testing.T, b *Backend, addr string, o Outcome, n int) {
	t.Helper()
	s := b.Server(addr)
	for range n {
		s.st.inflight.Add(1)
		b.Report(s, o, time.Millisecond)
	}
}

func ejected(b *Backend) []string {
	var out []string
	for _, st := range b.Stats(nil) {
		if st.Ejected {
			out = append(out, st.Addr)
		}
	}
	return out
}

func TestConsecutiveFailuresEjectAServer(t *testing.T) {
	tests := []struct {
		name    string
		reports []Outcome
		ejected bool
	}{
		{"five 5xx", []Outcome{ServerError, ServerError, ServerError, ServerError, ServerError}, true},
		{"mixed connect failures and timeouts", []Outcome{ConnectError, Timeout, ServerError, ConnectError, ConnectError}, true},
		{"a success in between", []Outcome{ServerError, ServerError, ServerError, ServerError, Success, ServerError}, false},
		{"cancellations are not failures", []Outcome{ServerError, ServerError, Canceled, Canceled, ServerError, ServerError}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := newBackend(t, Config{Clock: newFakeClock()}, servers("a", "b", "c", "d"))
			for _, o := range tt.reports {
				fail(t, b, "a", o, 1)
			}
			if got := len(ejected(b)) == 1; got != tt.ejected {
				t.Fatalf("ejected %v, want %v", ejected(b), tt.ejected)
			}
		})
	}
}

func TestEjectionBackOffDoublesUpToTheCapAndIsForgiven(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Clock: clock, Outlier: Outlier{Consecutive: 1, BaseEjection: time.Second, MaxEjection: 5 * time.Second}},
		servers("a", "b"))
	for _, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second} {
		fail(t, b, "a", ServerError, 1)
		if len(ejected(b)) != 1 {
			t.Fatalf("not ejected")
		}
		clock.Advance(want - time.Millisecond)
		if len(ejected(b)) != 1 {
			t.Fatalf("ejection shorter than %v", want)
		}
		clock.Advance(time.Millisecond)
		if len(ejected(b)) != 0 {
			t.Fatalf("ejection longer than %v", want)
		}
	}
	// Working for longer than the last ejection resets the back-off.
	clock.Advance(6 * time.Second)
	fail(t, b, "a", Success, 1)
	fail(t, b, "a", ServerError, 1)
	clock.Advance(time.Second)
	if len(ejected(b)) != 0 {
		t.Fatalf("back-off not reset after a healthy period")
	}
	if got := b.Server("a").stats(0, time.Second).Ejections; got != 6 {
		t.Errorf("ejections counter %d, want 6", got)
	}
}

func TestEjectionNeverExceedsMaxEjectedPercent(t *testing.T) {
	tests := []struct {
		servers, percent, want int
	}{
		{4, 50, 2},
		{3, 50, 1},
		{10, 10, 1},
		{1, 50, 0},
		{2, 100, 2},
	}
	for _, tt := range tests {
		var list []*Server
		for i := range tt.servers {
			list = append(list, &Server{Addr: string(rune('a' + i))})
		}
		b := newBackend(t, Config{Clock: newFakeClock(), Outlier: Outlier{MaxEjectedPercent: tt.percent}}, list)
		for _, s := range list {
			fail(t, b, s.Addr, ConnectError, 20)
		}
		if got := len(ejected(b)); got != tt.want {
			t.Errorf("%d servers, %d%%: %d ejected, want %d", tt.servers, tt.percent, got, tt.want)
		}
	}
}

func TestServersDownByHealthChecksCountTowardsTheEjectionLimit(t *testing.T) {
	b := newBackend(t, Config{Clock: newFakeClock()}, servers("a", "b", "c", "d"))
	b.SetHealthy("a", false)
	fail(t, b, "b", ServerError, 5)
	fail(t, b, "c", ServerError, 5)
	if got := ejected(b); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("ejected %v, want only b: a and b make half of the backend", got)
	}
}

func TestEjectedServersAreSkippedUntilTheyReturn(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Clock: clock}, servers("a", "b", "c"))
	fail(t, b, "b", ServerError, 5)
	for range 10 {
		if got := candidates(t, b, 0); slices.Contains(got, "b") || len(got) != 2 {
			t.Fatalf("candidates %v while b is ejected", got)
		}
	}
	clock.Advance(10 * time.Second)
	if got := candidates(t, b, 0); !slices.Contains(got, "b") {
		t.Fatalf("candidates %v after b's ejection ended", got)
	}
}

func TestCircuitBreakerLimitsConcurrentAndPending(t *testing.T) {
	b := newBackend(t, Config{Limits: Limits{MaxConcurrent: 2, MaxPending: 1}}, servers("a"))
	ctx := context.Background()
	var its [2]Iter
	for i := range its {
		if err := b.Begin(ctx, &its[i], 0); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	// The third waits for a slot; the fourth finds the queue full.
	waited := make(chan error, 1)
	go func() {
		var it Iter
		err := b.Begin(ctx, &it, 0)
		if err == nil {
			it.End()
		}
		waited <- err
	}()
	waitFor(t, func() bool { return b.Counters().Pending == 1 })
	var fourth Iter
	if err := b.Begin(ctx, &fourth, 0); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("fourth request: %v, want ErrCircuitOpen", err)
	}
	its[0].End()
	its[0].End() // a second End must not free another slot
	if err := <-waited; err != nil {
		t.Fatalf("queued request: %v", err)
	}
	c := b.Counters()
	if c.Active != 1 || c.Pending != 0 || c.CircuitOpen != 1 {
		t.Fatalf("counters %+v, want 1 active, 0 pending, 1 refused", c)
	}
	its[1].End()
}

func TestBeginEndsAForgottenRequest(t *testing.T) {
	b := newBackend(t, Config{Limits: Limits{MaxConcurrent: 1}}, servers("a"))
	var it Iter
	for range 3 {
		if err := b.Begin(context.Background(), &it, 0); err != nil {
			t.Fatalf("Begin after a forgotten End: %v", err)
		}
	}
	it.End()
	if c := b.Counters(); c.Active != 0 {
		t.Fatalf("%d active after End", c.Active)
	}
}

func TestCircuitBreakerWaiterGivesUpWithItsContext(t *testing.T) {
	b := newBackend(t, Config{Limits: Limits{MaxConcurrent: 1, MaxPending: 5}}, servers("a"))
	var held, waiter Iter
	if err := b.Begin(context.Background(), &held, 0); err != nil {
		t.Fatal(err)
	}
	defer held.End()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := b.Begin(ctx, &waiter, 0)
	if !errors.Is(err, ErrCircuitOpen) || !errors.Is(err, context.Canceled) {
		t.Fatalf("Begin with canceled context: %v", err)
	}
}

func TestRetryBudgetBoundsRetriesToARatioOfRequests(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Clock: clock, Budget: Budget{Ratio: 0.2, MinPerSecond: 1, Window: time.Second}},
		servers("a", "b", "c"))
	retries := func(requests int) (allowed int) {
		var it Iter
		for range requests {
			if err := b.Begin(context.Background(), &it, 0); err != nil {
				t.Fatal(err)
			}
			s, _ := it.Next()
			b.Report(s, ServerError, 0)
			if s, err := it.Next(); err == nil {
				b.Report(s, Success, 0)
				allowed++
			} else if !errors.Is(err, ErrRetryBudget) {
				t.Fatalf("retry: %v", err)
			}
			it.End()
		}
		return allowed
	}
	// 100 requests: 20% of them plus a floor of 1 per second.
	if got := retries(100); got != 21 {
		t.Fatalf("retries allowed %d of 100, want 21", got)
	}
	if got := b.Counters().BudgetDenied; got != 79 {
		t.Errorf("BudgetDenied %d, want 79", got)
	}
	// Once the window has slid past, the budget is whole again.
	clock.Advance(time.Second)
	if got := retries(10); got != 3 {
		t.Fatalf("retries allowed %d of 10 in a new window, want 3", got)
	}
}

func TestBackoffStaysWithinTheJitterBounds(t *testing.T) {
	tests := []struct {
		n        int
		base, mx time.Duration
		limit    time.Duration
	}{
		{0, time.Millisecond, time.Second, 0},
		{1, 10 * time.Millisecond, time.Second, 10 * time.Millisecond},
		{3, 10 * time.Millisecond, time.Second, 40 * time.Millisecond},
		{30, 10 * time.Millisecond, time.Second, time.Second},
		{2, 10 * time.Millisecond, 0, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		var most time.Duration
		for range 2000 {
			d := Backoff(tt.n, tt.base, tt.mx)
			if d < 0 || d > tt.limit {
				t.Fatalf("Backoff(%d, %v, %v) = %v, want within [0, %v]", tt.n, tt.base, tt.mx, d, tt.limit)
			}
			most = max(most, d)
		}
		if most < tt.limit/2 {
			t.Errorf("Backoff(%d, %v, %v) never above %v: no jitter range", tt.n, tt.base, tt.mx, most)
		}
	}
}

func TestSetServersKeepsStateOfServersThatRemain(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Clock: clock}, servers("a", "b", "c"))
	fail(t, b, "a", ServerError, 5)
	b.SetHealthy("b", false)

	// A request in flight on c while the set changes.
	var inflight Iter
	if err := b.Begin(context.Background(), &inflight, 0); err != nil {
		t.Fatal(err)
	}
	defer inflight.End()
	c := b.Server("c")

	if err := b.SetServers(servers("a", "b", "d")); err != nil {
		t.Fatal(err)
	}
	if got := ejected(b); !slices.Equal(got, []string{"a"}) {
		t.Errorf("ejected after swap %v, want [a]", got)
	}
	if got := candidates(t, b, 0); !slices.Equal(got, []string{"d"}) {
		t.Errorf("candidates after swap %v, want [d]", got)
	}
	// The old request still sees its set and may report on removed c.
	c.st.inflight.Add(1)
	b.Report(c, Success, time.Millisecond)
	if b.Server("c") != nil {
		t.Errorf("removed server still present")
	}
	// Bringing c back starts it afresh.
	if err := b.SetServers(servers("a", "b", "c", "d")); err != nil {
		t.Fatal(err)
	}
	if got := b.Server("c").stats(0, time.Second).Requests; got != 0 {
		t.Errorf("re-added server has %d requests, want fresh state", got)
	}
}

func TestSetServersRejectsBadLists(t *testing.T) {
	b := newBackend(t, Config{}, servers("a"))
	for _, list := range [][]*Server{servers("a", "a"), servers("")} {
		if err := b.SetServers(list); err == nil {
			t.Errorf("SetServers(%v) accepted", list)
		}
	}
	if got := candidates(t, b, 0); !slices.Equal(got, []string{"a"}) {
		t.Errorf("a rejected list changed the set: %v", got)
	}
}

func TestBackupsServeOnlyWhenNoPrimaryIsUsable(t *testing.T) {
	list := append(servers("p1", "p2"), &Server{Addr: "b1", Backup: true})
	b := newBackend(t, Config{}, list)
	var it Iter
	for range 10 {
		if got := pick(t, b, &it, 0); got == "b1" {
			t.Fatal("backup used while primaries are healthy")
		}
	}
	b.SetHealthy("p1", false)
	b.SetHealthy("p2", false)
	if got := pick(t, b, &it, 0); got != "b1" {
		t.Fatalf("picked %s with primaries down, want the backup", got)
	}
	if !b.SetHealthy("p2", true) || b.SetHealthy("nope", true) {
		t.Fatal("SetHealthy reports membership wrongly")
	}
	if got := pick(t, b, &it, 0); got != "p2" {
		t.Fatalf("picked %s after p2 recovered, want p2", got)
	}
}

func TestSelectionAllocatesNothing(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			b := newBackend(t, Config{Policy: p.policy, Budget: Budget{MinPerSecond: 1000}}, servers("a", "b", "c"))
			var it Iter
			ctx := context.Background()
			allocs := testing.AllocsPerRun(200, func() {
				if err := b.Begin(ctx, &it, 12345); err != nil {
					t.Fatal(err)
				}
				for _, o := range []Outcome{ServerError, Success} {
					s, err := it.Next()
					if err != nil {
						t.Fatal(err)
					}
					it.Report(s, o, time.Millisecond)
				}
				it.End()
			})
			if allocs != 0 {
				t.Fatalf("%v allocations per request, want 0", allocs)
			}
		})
	}
}

func TestConcurrentRequestsSurviveServerSetSwaps(t *testing.T) {
	b := newBackend(t, Config{Policy: PeakEWMA{}, Budget: Budget{MinPerSecond: 1 << 20}}, servers("a", "b", "c"))
	sets := [][]*Server{servers("a", "b", "c"), servers("b", "c", "d"), servers("d"), servers("a", "d", "e", "f")}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			var it Iter
			for n := range 2000 {
				if err := b.Begin(context.Background(), &it, uint64(n)); err != nil {
					t.Error(err)
					return
				}
				for _, o := range []Outcome{Outcome(n % 4), Success} {
					s, err := it.Next()
					if err != nil {
						break
					}
					b.Report(s, o, time.Duration(g)*time.Millisecond)
				}
				it.End()
			}
		})
	}
	wg.Go(func() {
		for n := range 200 {
			if err := b.SetServers(sets[n%len(sets)]); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
	if err := b.SetServers(servers("a", "b", "c", "d", "e", "f")); err != nil {
		t.Fatal(err)
	}
	for _, st := range b.Stats(nil) {
		if st.Inflight != 0 {
			t.Errorf("%s: %d in flight after all requests ended", st.Addr, st.Inflight)
		}
	}
	if c := b.Counters(); c.Active != 0 {
		t.Errorf("%d requests active after all ended", c.Active)
	}
}

func TestReconfigureKeepsServerStateAndAppliesNewSettings(t *testing.T) {
	clock := newFakeClock()
	cfg := Config{Name: "origin", Clock: clock, Limits: Limits{MaxConcurrent: 1}}
	b := newBackend(t, cfg, servers("a", "b", "c"))
	fail(t, b, "a", ServerError, 5)
	var held Iter
	if err := b.Begin(context.Background(), &held, 0); err != nil {
		t.Fatal(err)
	}

	cfg.Policy = Ketama{}
	cfg.Limits = Limits{MaxConcurrent: 2}
	cfg.Outlier = Outlier{Consecutive: 1, MaxEjectedPercent: 100}
	if err := b.Reconfigure(cfg); err != nil {
		t.Fatal(err)
	}
	if got := ejected(b); !slices.Equal(got, []string{"a"}) {
		t.Errorf("ejected after reconfigure %v, want [a]", got)
	}
	if _, ok := b.set.Load().primary.sel.(*ring); !ok {
		t.Errorf("policy not rebuilt as Ketama")
	}
	// The new limit admits two more requests beside the one held under the
	// old limit; the old slot is released to the old breaker.
	var its [2]Iter
	for i := range its {
		if err := b.Begin(context.Background(), &its[i], 0); err != nil {
			t.Fatalf("request %d under new limit: %v", i, err)
		}
	}
	var third Iter
	if err := b.Begin(context.Background(), &third, 0); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("third request under new limit: %v, want ErrCircuitOpen", err)
	}
	held.End()
	its[0].End()
	its[1].End()
	// One failure now ejects.
	fail(t, b, "b", ServerError, 1)
	if got := ejected(b); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("ejected %v, want a and b", got)
	}

	cfg.Name = "other"
	if err := b.Reconfigure(cfg); err == nil {
		t.Error("Reconfigure accepted a new name")
	}
	cfg.Name, cfg.LatencyDecay = "origin", -1
	if err := b.Reconfigure(cfg); err == nil {
		t.Error("Reconfigure accepted a negative decay")
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Limits: Limits{MaxConcurrent: -1}},
		{Limits: Limits{MaxPending: -1}},
		{Budget: Budget{Ratio: -0.1}},
		{Budget: Budget{Window: -time.Second}},
		{LatencyDecay: -time.Second},
	} {
		if _, err := New(cfg, servers("a")); err == nil {
			t.Errorf("New(%+v) accepted", cfg)
		}
	}
	if _, err := New(Config{}, servers("a", "a")); err == nil {
		t.Error("New accepted a server listed twice")
	}
}

func TestIterCountsAttemptsAndInflight(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Clock: clock, Policy: PeakEWMA{}}, servers("a", "b"))
	var it Iter
	if err := b.Begin(context.Background(), &it, 0); err != nil {
		t.Fatal(err)
	}
	defer it.End()
	s, err := it.Next()
	if err != nil {
		t.Fatal(err)
	}
	if it.Attempts() != 1 || s.Inflight() != 1 {
		t.Fatalf("attempts %d, in flight %d; want 1, 1", it.Attempts(), s.Inflight())
	}
	it.Report(s, Success, 20*time.Millisecond)
	if s.Inflight() != 0 {
		t.Fatalf("in flight %d after Report", s.Inflight())
	}
	// The report was taken at start+took, so the estimate is undecayed
	// 20ms from Candidates' point of view at that instant.
	c := Candidates{servers: b.Servers(), now: clock.Now().Add(20 * time.Millisecond).UnixNano(), decay: time.Second}
	if got := c.Latency(slices.Index(b.Addrs(nil), s.Addr)); got != 20*time.Millisecond {
		t.Fatalf("latency %v, want 20ms", got)
	}
}
