package limit

import (
	"encoding/binary"
	"hash/maphash"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

func mustNew(t testing.TB, l Limit, slots int) *Limiter {
	t.Helper()
	lim, err := New(l, slots)
	if err != nil {
		t.Fatal(err)
	}
	return lim
}

func TestAllowGrantsTheBurstThenRefusesWithRetryAfter(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 10}, 0)
	key := []byte("client")
	for i := range 10 {
		d := lim.Allow(key, t0)
		if !d.Allowed || d.Remaining != 9-i {
			t.Fatalf("request %d: %+v, want allowed with %d remaining", i, d, 9-i)
		}
	}
	d := lim.Allow(key, t0)
	want := Decision{RetryAfter: 100 * time.Millisecond, ResetAfter: time.Second}
	if d != want {
		t.Fatalf("11th request: %+v, want %+v", d, want)
	}
}

func TestAllowRefillsAtTheRate(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 10, Burst: 2}, 0)
	key := []byte("client")
	steps := []struct {
		at      time.Duration
		allowed bool
	}{
		{0, true}, {0, true}, {0, false},
		{50 * time.Millisecond, false},
		{100 * time.Millisecond, true}, {100 * time.Millisecond, false},
		{time.Second, true}, {time.Second, true}, {time.Second, false},
	}
	for _, s := range steps {
		if d := lim.Allow(key, t0.Add(s.at)); d.Allowed != s.allowed {
			t.Fatalf("at %v: %+v, want allowed=%v", s.at, d, s.allowed)
		}
	}
}

func TestAllowKeepsKeysApart(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 1}, 0)
	if !lim.Allow([]byte("a"), t0).Allowed || lim.Allow([]byte("a"), t0).Allowed {
		t.Fatal("a: want one request allowed then refused")
	}
	if !lim.Allow([]byte("b"), t0).Allowed {
		t.Fatal("b was refused because of a")
	}
}

func TestAllowFailsOpenWhenTheTableIsFull(t *testing.T) {
	// 8 slots, 1000 clients, each within its limit (one request a second,
	// burst 5): evictions must never turn into refusals. Keys whose 20-bit
	// fingerprints clash share a bucket by design, so the test picks keys
	// with distinct ones.
	lim := mustNew(t, Limit{Rate: 1, Burst: 5}, 8)
	if lim.Slots() != 8 {
		t.Fatalf("slots = %d", lim.Slots())
	}
	var keys [][]byte
	seen := map[uint64]bool{}
	for c := 0; len(keys) < 1000; c++ {
		key := binary.LittleEndian.AppendUint64(nil, uint64(c))
		if fp := maphash.Bytes(lim.seed, key) >> tatBits; !seen[fp] {
			seen[fp] = true
			keys = append(keys, key)
		}
	}
	for round := range 5 {
		now := t0.Add(time.Duration(round) * time.Second)
		for c, key := range keys {
			if d := lim.Allow(key, now); !d.Allowed {
				t.Fatalf("round %d client %d refused: %+v", round, c, d)
			}
		}
	}
}

func TestAllowStillLimitsAHotKeyAmongManyColdOnes(t *testing.T) {
	// A hot key in debt is the last one its set evicts.
	lim := mustNew(t, Limit{Rate: 1, Burst: 3}, 64)
	hot := []byte("hot")
	for range 3 {
		lim.Allow(hot, t0)
	}
	var key [8]byte
	for c := range 10000 {
		binary.LittleEndian.PutUint64(key[:], uint64(c))
		lim.Allow(key[:], t0) // cold keys: one request each, less debt than hot
	}
	if d := lim.Allow(hot, t0.Add(time.Millisecond)); d.Allowed {
		t.Fatalf("hot key allowed after cold traffic: %+v", d)
	}
}

func TestAllowWorksFarFromTheEpoch(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 1, Period: time.Minute}, 0)
	for _, off := range []time.Duration{-400 * 24 * time.Hour, 0, 150 * 24 * time.Hour, 250 * 24 * time.Hour, 5 * 365 * 24 * time.Hour} {
		now := time.Now().Add(off)
		key := []byte(off.String())
		if !lim.Allow(key, now).Allowed {
			t.Fatalf("offset %v: first request refused", off)
		}
		if d := lim.Allow(key, now.Add(time.Second)); d.Allowed || d.RetryAfter != 59*time.Second {
			t.Fatalf("offset %v: second request %+v, want refused for 59s", off, d)
		}
		if !lim.Allow(key, now.Add(time.Minute)).Allowed {
			t.Fatalf("offset %v: request after a period refused", off)
		}
	}
}

func TestAllowIsSafeForConcurrentUse(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 100}, 64)
	var wg sync.WaitGroup
	var mu sync.Mutex
	allowed := 0
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for range 100 {
				if lim.Allow([]byte("shared"), t0).Allowed {
					n++
				}
				lim.Allow([]byte{byte(g)}, t0)
			}
			mu.Lock()
			allowed += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	if allowed != 100 {
		t.Fatalf("allowed %d of 800 concurrent requests on one key, want exactly the burst of 100", allowed)
	}
}

var validateTests = []struct {
	name string
	l    Limit
	ok   bool
}{
	{"zero rate is refused", Limit{}, false},
	{"negative period is refused", Limit{Rate: 1, Period: -time.Second}, false},
	{"more than one per microsecond is refused", Limit{Rate: 2_000_000}, false},
	{"a burst that takes days to refill is refused", Limit{Rate: 1, Burst: 100_000}, false},
	{"rate alone is enough", Limit{Rate: 100}, true},
}

func TestValidate(t *testing.T) {
	for _, tt := range validateTests {
		if err := tt.l.Validate(); (err == nil) != tt.ok {
			t.Errorf("%s: Validate() = %v", tt.name, err)
		}
	}
}

func TestHeaderValuesFollowTheIETFDraft(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 100}, 0)
	d := lim.Allow([]byte("k"), t0)
	refused := Decision{RetryAfter: 1500 * time.Millisecond, ResetAfter: 3 * time.Second}
	tests := []struct{ got, want string }{
		{string(lim.AppendPolicy(nil)), `"default";q=100;w=1`},
		{string(AppendRateLimit(nil, "default", d)), `"default";r=99;t=1`},
		{string(AppendPolicy(nil, `per "ip"`, 10, time.Minute)), `"per \"ip\"";q=10;w=60`},
		{string(AppendRateLimit(nil, "x", refused)), `"x";r=0;t=3`},
		{string(AppendRetryAfter(nil, refused)), `2`},
		{string(AppendRetryAfter(nil, Decision{RetryAfter: time.Millisecond})), `1`},
		{string(AppendRetryAfter(nil, Decision{})), `1`},
	}
	for i, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%d: got %s, want %s", i, tt.got, tt.want)
		}
	}
}

func TestInFlightEnforcesPerKeyAndTotalLimits(t *testing.T) {
	f := &InFlight{PerKey: 2, Total: 3}
	a1, ok1 := f.Acquire([]byte("a"))
	_, ok2 := f.Acquire([]byte("a"))
	if _, ok := f.Acquire([]byte("a")); !ok1 || !ok2 || ok {
		t.Fatalf("a: got %v %v %v, want two then refused", ok1, ok2, ok)
	}
	if _, ok := f.Acquire([]byte("b")); !ok {
		t.Fatal("b refused below the total")
	}
	if _, ok := f.Acquire([]byte("c")); ok {
		t.Fatal("c allowed above the total")
	}
	a1.Release()
	if f.Count([]byte("a")) != 1 || f.Open() != 2 {
		t.Fatalf("after release: a=%d open=%d", f.Count([]byte("a")), f.Open())
	}
	if _, ok := f.Acquire([]byte("c")); !ok {
		t.Fatal("c refused after a release")
	}
	Ticket{}.Release() // the zero ticket releases nothing
	if f.Open() != 3 {
		t.Fatalf("open = %d after releasing the zero ticket", f.Open())
	}
}

func TestInFlightForgetsKeysWithNothingOpen(t *testing.T) {
	var f InFlight
	for i := range 1000 {
		tk, _ := f.Acquire(binary.LittleEndian.AppendUint32(nil, uint32(i)))
		tk.Release()
	}
	n := 0
	for i := range f.shards {
		n += len(f.shards[i].counts)
	}
	if n != 0 || f.Open() != 0 {
		t.Fatalf("%d keys kept, %d open", n, f.Open())
	}
}

func TestInFlightIsSafeForConcurrentUse(t *testing.T) {
	f := &InFlight{PerKey: 4}
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 500 {
				if tk, ok := f.Acquire([]byte("k")); ok {
					if n := f.Count([]byte("k")); n > 4 {
						t.Errorf("count %d above the limit", n)
					}
					tk.Release()
				}
			}
		}()
	}
	wg.Wait()
	if f.Open() != 0 {
		t.Fatalf("open = %d after all released", f.Open())
	}
}

func TestClientKeyGroupsAnIPv6Slash64(t *testing.T) {
	tests := []struct {
		a, b string
		same bool
	}{
		{"192.0.2.1", "::ffff:192.0.2.1", true},
		{"192.0.2.1", "192.0.2.2", false},
		{"2001:db8:1:2::1", "2001:db8:1:2:ffff::9", true},
		{"2001:db8:1:2::1", "2001:db8:1:3::1", false},
	}
	for _, tt := range tests {
		ka := ClientKey(nil, netip.MustParseAddr(tt.a))
		kb := ClientKey(nil, netip.MustParseAddr(tt.b))
		if (string(ka) == string(kb)) != tt.same {
			t.Errorf("ClientKey(%s) vs ClientKey(%s): same=%v, want %v", tt.a, tt.b, !tt.same, tt.same)
		}
	}
	if k := IPKey(nil, netip.MustParseAddr("2001:db8::1")); len(k) != 16 {
		t.Errorf("IPv6 IPKey length %d", len(k))
	}
}

func TestRateCountsTheCurrentIntervalAndReportsThePrevious(t *testing.T) {
	r := NewRate(time.Second, 1024)
	base := time.Now().Truncate(time.Second).Add(time.Second) // whole intervals from here on
	base = base.Add(-base.Sub(r.epoch) % time.Second)
	a, b := []byte("a"), []byte("b")
	for i := range 10 {
		if got := r.Observe(a, 1, base.Add(time.Duration(i)*50*time.Millisecond)); got != i+1 {
			t.Fatalf("observe %d: count %d", i, got)
		}
	}
	r.Observe(b, 3, base)
	if got := r.Previous(a, base); got != 0 {
		t.Fatalf("previous before any full interval = %d", got)
	}
	next := base.Add(time.Second)
	if got := r.Rate(a, next); got != 10 {
		t.Fatalf("rate of a = %v, want 10/s", got)
	}
	if got := r.Previous(b, next.Add(999*time.Millisecond)); got != 3 {
		t.Fatalf("previous of b = %d, want 3", got)
	}
	if got := r.Observe(a, 1, next); got != 1 {
		t.Fatalf("count in the new interval = %d, want 1", got)
	}
	// two intervals later the old counts are gone
	later := base.Add(3 * time.Second)
	r.Observe(a, 1, later)
	if got := r.Previous(a, later); got != 0 {
		t.Fatalf("previous after a silent interval = %d", got)
	}
	if got := r.Observe(a, 1, base.Add(-2*time.Second)); got != 0 {
		t.Fatalf("observe with a stale clock counted %d", got)
	}
}

func TestRateOverestimatesLittleWithAWideSketch(t *testing.T) {
	r := NewRate(time.Minute, 1<<14)
	var key [8]byte
	for i := range 2000 {
		binary.LittleEndian.PutUint64(key[:], uint64(i))
		r.Observe(key[:], 1+i%5, t0)
	}
	off := 0
	for i := range 2000 {
		binary.LittleEndian.PutUint64(key[:], uint64(i))
		got := r.Observe(key[:], 0, t0)
		if got < 1+i%5 {
			t.Fatalf("key %d undercounted: %d < %d", i, got, 1+i%5)
		}
		if got != 1+i%5 {
			off++
		}
	}
	if off > 20 {
		t.Fatalf("%d of 2000 keys overestimated", off)
	}
}

func TestRateIsSafeForConcurrentUse(t *testing.T) {
	r := NewRate(time.Second, 256)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				r.Observe([]byte{byte(g), byte(i)}, 1, t0.Add(time.Duration(i)*time.Millisecond))
				r.Rate([]byte{byte(g)}, t0.Add(time.Duration(i)*time.Millisecond))
			}
		}()
	}
	wg.Wait()
}

func TestAllowNTakesTheWholeCostOrNothing(t *testing.T) {
	lim := mustNew(t, Limit{Rate: 10}, 0)
	key := []byte("k")
	if d := lim.AllowN(key, 7, t0); !d.Allowed || d.Remaining != 3 {
		t.Fatalf("cost 7: %+v", d)
	}
	if d := lim.AllowN(key, 4, t0); d.Allowed || d.RetryAfter != 100*time.Millisecond {
		t.Fatalf("cost 4 with 3 left: %+v, want refused for 100ms", d)
	}
	if d := lim.AllowN(key, 3, t0); !d.Allowed || d.Remaining != 0 {
		t.Fatalf("cost 3 with 3 left: %+v", d)
	}
	if d := lim.AllowN([]byte("other"), 11, t0); d.Allowed {
		t.Fatalf("cost above the burst allowed: %+v", d)
	}
}

func TestRateSlidingBlendsThePreviousInterval(t *testing.T) {
	r := NewRate(time.Second, 1024)
	base := time.Now().Add(time.Hour)
	base = base.Add(-base.Sub(r.epoch) % time.Second) // start of an interval
	key := []byte("k")
	r.Observe(key, 100, base)
	tests := []struct {
		at   time.Duration
		want float64
	}{
		{1000 * time.Millisecond, 100 + 1},   // window covers all of the previous interval
		{1250 * time.Millisecond, 75 + 2},    // a quarter of it has slid out
		{1750 * time.Millisecond, 25 + 3},    // three quarters
		{2500 * time.Millisecond, 3*0.5 + 1}, // the interval before counted 3
	}
	for _, tt := range tests {
		if got := r.Sliding(key, 1, base.Add(tt.at)); got != tt.want {
			t.Errorf("at %v: %v, want %v", tt.at, got, tt.want)
		}
	}
}

func TestRateNeverUndercountsConcurrentObservers(t *testing.T) {
	r := NewRate(time.Hour, 64)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 1000 {
				r.Observe([]byte("k"), 1, t0)
				r.Observe([]byte{byte(g), byte(i)}, 1, t0) // neighbours sharing counters
			}
		}()
	}
	wg.Wait()
	if got := r.Observe([]byte("k"), 0, t0); got < 4000 {
		t.Fatalf("count %d, want at least the 4000 observed", got)
	}
}
