package upstream

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func benchBackend(b *testing.B, p Policy, n int) *Backend {
	list := make([]*Server, n)
	for i := range list {
		list[i] = &Server{Addr: fmt.Sprintf("10.0.%d.%d:8080", i/256, i%256), Weight: 1 + i%3}
	}
	be := newBackend(b, Config{Policy: p}, list)
	// Give the latency-aware policy real estimates to compare.
	now := be.now()
	for i, s := range be.Servers() {
		s.observe(now, time.Duration(i+1)*time.Millisecond, be.tune.Load().decay)
	}
	return be
}

// BenchmarkSelect measures what the engine pays per request for choosing a
// server: Begin, Next, Report and End.
func BenchmarkSelect(b *testing.B) {
	for _, p := range policies {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				be := benchBackend(b, p.policy, n)
				ctx := context.Background()
				var it Iter
				key := uint64(0)
				b.ReportAllocs()
				for b.Loop() {
					key += 0x9e3779b97f4a7c15
					if err := be.Begin(ctx, &it, key>>32); err != nil {
						b.Fatal(err)
					}
					s, err := it.Next()
					if err != nil {
						b.Fatal(err)
					}
					it.Report(s, Success, time.Millisecond)
					it.End()
				}
			})
		}
	}
}

// BenchmarkSelector measures the policy alone: one Select over a group of
// healthy servers, without the request bookkeeping around it.
func BenchmarkSelector(b *testing.B) {
	for _, p := range policies {
		for _, n := range []int{3, 100} {
			b.Run(fmt.Sprintf("%s/%d", p.name, n), func(b *testing.B) {
				be := benchBackend(b, p.policy, n)
				set := be.set.Load()
				c := Candidates{servers: set.primary.servers, tried: make([]uint64, 2), now: be.now(), decay: time.Second}
				b.ReportAllocs()
				for b.Loop() {
					c.key += 0x9e3779b97f4a7c15 >> 32
					if set.primary.sel.Select(&c) < 0 {
						b.Fatal("no server")
					}
				}
			})
		}
	}
}

// BenchmarkSelectParallel is BenchmarkSelect from all CPUs at once: it shows
// that selection shares no lock.
func BenchmarkSelectParallel(b *testing.B) {
	for _, p := range policies {
		b.Run(p.name, func(b *testing.B) {
			be := benchBackend(b, p.policy, 100)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				var it Iter
				key := uint64(0)
				for pb.Next() {
					key += 0x9e3779b97f4a7c15
					if err := be.Begin(context.Background(), &it, key>>32); err != nil {
						b.Fatal(err)
					}
					s, err := it.Next()
					if err != nil {
						b.Fatal(err)
					}
					it.Report(s, Success, time.Millisecond)
					it.End()
				}
			})
		})
	}
}

func BenchmarkHashKey(b *testing.B) {
	key := []byte("/packages/3b/2c/5f/requests-2.32.3-py3-none-any.whl")
	b.ReportAllocs()
	for b.Loop() {
		HashKey(key)
	}
}
