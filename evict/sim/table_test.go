package sim

import (
	"flag"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/outpost-edge/outpost/evict/tracegen"
)

// zipf09 is the classic equal-size Zipf(0.9) trace: 1,000,000 objects,
// 2,000,000 requests, no drift and no one-hit wonders.
func zipf09(requests int) tracegen.Config {
	return tracegen.Config{
		Name: "zipf-0.9", Requests: requests, Objects: requests / 2, Alpha: 0.9,
		Sizes: tracegen.Sizes{Median: 4096, MinSize: 4096, MaxSize: 4096}, Seed: 1,
	}
}

// drifting is the downloads trace with popularity swapping fifty times
// more often: recency-heavy traffic. It is measured, not held to the
// targets.
func drifting(requests int) tracegen.Config {
	c := tracegen.Downloads(requests, 1)
	c.Name, c.Drift = "downloads, drift 0.5", 0.5
	return c
}

var requests = flag.Int("requests", 200_000, "requests per trace of TestHitRatioTable (Zipf: twice as many)")

type policyCase struct {
	name string
	new  func(capacity int64) Cache
}

var policies = []policyCase{
	{"LRU", func(c int64) Cache { return NewLRU(c) }},
	{"S3-FIFO", func(c int64) Cache { return NewS3FIFO(c) }},
	{"W-TinyLFU", func(c int64) Cache { return NewWTinyLFU(c) }},
	{"Outpost", func(c int64) Cache { return NewPolicy(c) }},
}

// TestHitRatioTable replays each trace through every policy at cache sizes
// from 0.1% of the trace's footprint to all of it, prints the table kept in
// bench/README.md, and checks Outpost's policy against LRU: request and
// byte hit ratios at or above it at every size, the compulsory-miss bound
// when everything fits, and 5 points more than LRU on Zipf(0.9) at 1%.
// "100%" is room for the whole footprint: the compulsory-miss bound.
//
//	go test ./evict/sim -run TestHitRatioTable -v -requests 1000000
//
// makes the table; the default is a fifth of that, and -short a fifth of
// the default.
func TestHitRatioTable(t *testing.T) {
	n := *requests
	if testing.Short() {
		n /= 5
	}
	configs := []tracegen.Config{tracegen.Downloads(n, 1), tracegen.Media(n, 1), zipf09(2 * n), drifting(n)}
	fractions := []float64{0.001, 0.01, 0.1, 1}
	type row struct {
		trace      string
		fraction   float64
		results    []Result
		compulsory Result
	}
	rows := make([][]row, len(configs))
	var wg sync.WaitGroup
	for i, c := range configs {
		wg.Go(func() {
			trace := tracegen.Generate(c)
			_, footprint := tracegen.Footprint(trace)
			bound := Compulsory(trace)
			for _, f := range fractions {
				r := row{trace: c.Name, fraction: f, compulsory: bound}
				for _, p := range policies {
					r.results = append(r.results, Run(p.new(int64(f*float64(footprint))), trace))
				}
				rows[i] = append(rows[i], r)
			}
		})
	}
	wg.Wait()

	var b strings.Builder
	b.WriteString("| trace, cache size |")
	for _, p := range policies {
		fmt.Fprintf(&b, " %s req / byte |", p.name)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|", len(policies)) + "\n")
	for _, rs := range rows {
		for _, r := range rs {
			fmt.Fprintf(&b, "| %s, %g%% |", r.trace, 100*r.fraction)
			for _, res := range r.results {
				fmt.Fprintf(&b, " %.3f / %.3f |", res.RequestRatio(), res.ByteRatio())
			}
			b.WriteString("\n")
		}
	}
	t.Logf("%d requests per trace (Zipf: %d)\n%s", n, 2*n, b.String())

	const lru, outpost = 0, 3
	for _, rs := range rows[:3] { // the drifting trace is not held to the targets
		for _, r := range rs {
			l, o := r.results[lru], r.results[outpost]
			if o.RequestRatio() < l.RequestRatio() || o.ByteRatio() < l.ByteRatio() {
				t.Errorf("%s at %g%%: Outpost %.3f / %.3f below LRU %.3f / %.3f", r.trace, 100*r.fraction,
					o.RequestRatio(), o.ByteRatio(), l.RequestRatio(), l.ByteRatio())
			}
			if r.fraction == 1 && o != r.compulsory {
				t.Errorf("%s with room for everything: Outpost %+v, compulsory-miss bound %+v", r.trace, o, r.compulsory)
			}
			if r.trace == "zipf-0.9" && r.fraction == 0.01 && o.RequestRatio() < l.RequestRatio()+0.05 {
				t.Errorf("zipf-0.9 at 1%%: Outpost %.3f, not 5 points above LRU %.3f", o.RequestRatio(), l.RequestRatio())
			}
		}
	}
}
