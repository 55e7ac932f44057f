package upstream

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestEveryPolicyYieldsEachUsableServerOnceThenBackups(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			list := servers("a:1", "b:1", "c:1", "d:1", "e:1")
			list = append(list, &Server{Addr: "backup:1", Backup: true})
			b := newBackend(t, Config{Policy: p.policy, Budget: Budget{MinPerSecond: 1000}}, list)
			b.SetHealthy("b:1", false)
			b.SetHealthy("d:1", false)
			for key := range uint64(50) {
				got := candidates(t, b, key*0x9e3779b97f4a7c15)
				primaries := slices.Clone(got[:len(got)-1])
				slices.Sort(primaries)
				if !slices.Equal(primaries, []string{"a:1", "c:1", "e:1"}) || got[len(got)-1] != "backup:1" {
					t.Fatalf("key %d: candidates %v, want a, c, e in some order then backup", key, got)
				}
			}
		})
	}
}

func TestEveryPolicyFailsFastWhenAllServersAreDown(t *testing.T) {
	for _, p := range policies {
		t.Run(p.name, func(t *testing.T) {
			b := newBackend(t, Config{Policy: p.policy}, servers("a:1", "b:1", "c:1"))
			for _, s := range b.Servers() {
				b.SetHealthy(s.Addr, false)
			}
			if got := candidates(t, b, 7); len(got) != 0 {
				t.Fatalf("candidates %v, want none", got)
			}
			if n := b.Counters().NoServer; n != 1 {
				t.Errorf("NoServer counter %d, want 1", n)
			}
		})
	}
}

func TestRoundRobinTakesServersInTurn(t *testing.T) {
	b := newBackend(t, Config{}, servers("a:1", "b:1", "c:1"))
	var it Iter
	var got []string
	for range 6 {
		got = append(got, pick(t, b, &it, 0))
	}
	want := []string{"b:1", "c:1", "a:1", "b:1", "c:1", "a:1"}
	if !slices.Equal(got, want) {
		t.Fatalf("picks %v, want %v", got, want)
	}
}

func TestSmoothWeightedRoundRobinMatchesNginxSequence(t *testing.T) {
	// The example from nginx's commit introducing smooth weighted round
	// robin: weights 5, 1, 1 give a a b a c a a.
	b := newBackend(t, Config{Policy: WeightedRoundRobin{}},
		[]*Server{{Addr: "a", Weight: 5}, {Addr: "b", Weight: 1}, {Addr: "c", Weight: 1}})
	var it Iter
	var got []string
	for range 14 {
		got = append(got, pick(t, b, &it, 0))
	}
	want := []string{"a", "a", "b", "a", "c", "a", "a", "a", "a", "b", "a", "c", "a", "a"}
	if !slices.Equal(got, want) {
		t.Fatalf("picks %v, want %v", got, want)
	}
}

func TestWeightedPoliciesHonourWeights(t *testing.T) {
	weights := []int{1, 2, 3, 10, 34}
	tests := []struct {
		policy    Policy
		picks     int
		tolerance float64 // relative error allowed on each share
	}{
		{WeightedRoundRobin{}, 100_000, 0.01},
		{Random{}, 200_000, 0.08}, // 5 standard deviations for the lightest server
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%T", tt.policy), func(t *testing.T) {
			var list []*Server
			total := 0
			for i, w := range weights {
				list = append(list, &Server{Addr: strconv.Itoa(i), Weight: w})
				total += w
			}
			b := newBackend(t, Config{Policy: tt.policy}, list)
			counts := map[string]int{}
			var it Iter
			for range tt.picks {
				counts[pick(t, b, &it, 0)]++
			}
			for i, w := range weights {
				want := float64(tt.picks) * float64(w) / float64(total)
				got := float64(counts[strconv.Itoa(i)])
				if math.Abs(got-want)/want > tt.tolerance {
					t.Errorf("server weight %d: %v picks, want %v ±%v%%", w, got, want, tt.tolerance*100)
				}
			}
		})
	}
}

func TestWeightedCycleIsScaledDownForHugeWeights(t *testing.T) {
	w := scaleWeights([]int{1, 1_000_000, 3_000_000})
	total := w[0] + w[1] + w[2]
	if total > maxWeightedCycle+len(w) || w[0] != 1 || math.Abs(float64(w[2])/float64(w[1])-3) > 0.01 {
		t.Fatalf("scaled weights %v (sum %d)", w, total)
	}
	if got := scaleWeights([]int{10, 20, 30}); !slices.Equal(got, []int{1, 2, 3}) {
		t.Fatalf("scaled weights %v, want divided by gcd", got)
	}
}

func TestLeastRequestAvoidsBusyServer(t *testing.T) {
	b := newBackend(t, Config{Policy: LeastRequest{}}, servers("a:1", "b:1", "c:1"))
	busy := b.Server("a:1")
	busy.st.inflight.Store(50)
	counts := map[string]int{}
	var it Iter
	for range 3000 {
		counts[pick(t, b, &it, 0)]++
	}
	// a loses every draw against b or c; it wins only a draw of itself
	// twice, which power of two choices never makes.
	if counts["a:1"] != 0 {
		t.Fatalf("busy server got %d of 3000 picks: %v", counts["a:1"], counts)
	}
}

// TestPeakEWMAGivesSlowServerSmallShare simulates 3 servers, one 10x
// slower, under a steady concurrency of 8 requests, with a fake clock.
func TestPeakEWMAGivesSlowServerSmallShare(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Policy: PeakEWMA{}, Clock: clock}, servers("fast1", "fast2", "slow"))
	latency := map[string]time.Duration{"fast1": 10 * time.Millisecond, "fast2": 10 * time.Millisecond, "slow": 100 * time.Millisecond}
	type call struct {
		s    *Server
		done time.Time
		it   *Iter
	}
	var active []call
	counts := map[string]int{}
	const total, concurrency = 20_000, 8
	for n := range total {
		for len(active) >= concurrency {
			// Complete the earliest call: move the clock to it.
			first := slices.IndexFunc(active, func(c call) bool {
				return !slices.ContainsFunc(active, func(o call) bool { return o.done.Before(c.done) })
			})
			c := active[first]
			if d := c.done.Sub(clock.Now()); d > 0 {
				clock.Advance(d)
			}
			b.Report(c.s, Success, latency[c.s.Addr])
			c.it.End()
			active = slices.Delete(active, first, first+1)
		}
		it := new(Iter)
		if err := b.Begin(t.Context(), it, uint64(n)); err != nil {
			t.Fatal(err)
		}
		s, err := it.Next()
		if err != nil {
			t.Fatal(err)
		}
		counts[s.Addr]++
		active = append(active, call{s, clock.Now().Add(latency[s.Addr]), it})
	}
	share := float64(counts["slow"]) / total
	t.Logf("picks %v, slow share %.3f", counts, share)
	if share > 0.08 {
		t.Fatalf("slow server got %.1f%% of requests, want under 8%%", share*100)
	}
	if counts["slow"] == 0 {
		t.Fatalf("slow server never probed again; its estimate should decay")
	}
}

func TestPeakEWMARisesAtOnceAndDecaysSlowly(t *testing.T) {
	clock := newFakeClock()
	b := newBackend(t, Config{Policy: PeakEWMA{}, Clock: clock, LatencyDecay: 10 * time.Second}, servers("a"))
	s, decay := b.Server("a"), b.tune.Load().decay
	now := func() int64 { return clock.Now().UnixNano() }
	s.observe(now(), 10*time.Millisecond, decay)
	s.observe(now(), 100*time.Millisecond, decay)
	if got := s.latency(now(), decay); got != float64(100*time.Millisecond) {
		t.Fatalf("after a slow sample: %v, want the peak 100ms", time.Duration(got))
	}
	clock.Advance(10 * time.Second)
	if got, want := s.latency(now(), decay), float64(100*time.Millisecond)/math.E; math.Abs(got-want) > 1e3 {
		t.Fatalf("after one decay period: %v, want %v", time.Duration(got), time.Duration(want))
	}
}

func TestDecayFactorMatchesExp(t *testing.T) {
	for _, elapsed := range []time.Duration{0, -time.Second, 1, time.Microsecond, time.Millisecond, 100 * time.Millisecond, 156 * time.Millisecond, 157 * time.Millisecond, time.Second, 10 * time.Second, time.Hour} {
		want := math.Exp(-max(float64(elapsed), 0) / float64(10*time.Second))
		if got := decayFactor(int64(elapsed), 10*time.Second); math.Abs(got-want) > 1e-8 {
			t.Errorf("decayFactor(%v) = %v, want %v", elapsed, got, want)
		}
	}
}

func TestPowerOfTwoChoicesDrawsDistinctServersUniformly(t *testing.T) {
	for _, n := range []int{2, 3, 7} {
		b := newBackend(t, Config{}, make([]*Server, 0))
		list := make([]*Server, n)
		for i := range list {
			list[i] = &Server{Addr: strconv.Itoa(i)}
		}
		if err := b.SetServers(list); err != nil {
			t.Fatal(err)
		}
		c := Candidates{servers: b.Servers(), tried: make([]uint64, 1)}
		seen := make([]int, n)
		const draws = 30_000
		for range draws {
			a, b := c.randomPair()
			if a == b || a < 0 || b < 0 {
				t.Fatalf("n=%d: pair %d, %d", n, a, b)
			}
			seen[a]++
			seen[b]++
		}
		for i, got := range seen {
			if want := 2.0 * draws / float64(n); math.Abs(float64(got)-want)/want > 0.05 {
				t.Errorf("n=%d: server %d drawn %d times, want about %.0f", n, i, got, want)
			}
		}
	}
}
