package upstream

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

// fakeClock is a Clock that moves only when told.
type fakeClock struct{ ns atomic.Int64 }

func newFakeClock() *fakeClock {
	c := new(fakeClock)
	c.ns.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	return c
}

func (c *fakeClock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// servers builds primaries with the given addresses, weight 1.
func servers(addrs ...string) []*Server {
	out := make([]*Server, len(addrs))
	for i, a := range addrs {
		out[i] = &Server{Addr: a}
	}
	return out
}

func newBackend(t testing.TB, cfg Config, list []*Server) *Backend {
	t.Helper()
	if cfg.Log == nil {
		cfg.Log = quiet
	}
	b, err := New(cfg, list)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return b
}

// pick runs one single-attempt request and returns the server chosen.
func pick(t testing.TB, b *Backend, it *Iter, key uint64) string {
	t.Helper()
	if err := b.Begin(context.Background(), it, key); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	defer it.End()
	s, err := it.Next()
	if err != nil {
		t.Fatalf("Next: %v", err)
	}
	it.Report(s, Success, time.Millisecond)
	return s.Addr
}

// candidates returns every server Next yields for one request, in order.
func candidates(t testing.TB, b *Backend, key uint64) []string {
	t.Helper()
	var it Iter
	if err := b.Begin(context.Background(), &it, key); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	defer it.End()
	var got []string
	for range len(b.Servers()) + 1 {
		s, err := it.Next()
		if err != nil {
			break
		}
		it.Report(s, Canceled, 0)
		got = append(got, s.Addr)
	}
	return got
}

var policies = []struct {
	name   string
	policy Policy
}{
	{"RoundRobin", RoundRobin{}},
	{"WeightedRoundRobin", WeightedRoundRobin{}},
	{"Random", Random{}},
	{"Ketama", Ketama{}},
	{"LeastRequest", LeastRequest{}},
	{"PeakEWMA", PeakEWMA{}},
}
