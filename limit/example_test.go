package limit_test

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/outpost-edge/outpost/limit"
)

// A per-client limit of 5 requests a second, with the response fields a
// refused request gets.
func ExampleLimiter() {
	lim, err := limit.New(limit.Limit{Name: "per-client", Rate: 5}, 1<<16)
	if err != nil {
		panic(err)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	key := limit.ClientKey(nil, netip.MustParseAddr("2001:db8:1:2::7"))
	var d limit.Decision
	for range 6 {
		d = lim.Allow(key, now)
	}
	fmt.Println("allowed:", d.Allowed)
	fmt.Printf("Retry-After: %s\n", limit.AppendRetryAfter(nil, d))
	fmt.Printf("RateLimit-Policy: %s\n", lim.AppendPolicy(nil))
	fmt.Printf("RateLimit: %s\n", limit.AppendRateLimit(nil, "per-client", d))
	// Output:
	// allowed: false
	// Retry-After: 1
	// RateLimit-Policy: "per-client";q=5;w=1
	// RateLimit: "per-client";r=0;t=1
}

// Connections per client IP, at most 2 each and 1000 in all.
func ExampleInFlight() {
	conns := &limit.InFlight{PerKey: 2, Total: 1000}
	key := limit.IPKey(nil, netip.MustParseAddr("192.0.2.1"))
	first, _ := conns.Acquire(key)
	second, _ := conns.Acquire(key)
	_, ok := conns.Acquire(key)
	fmt.Println("third connection allowed:", ok)
	first.Release()
	second.Release()
	fmt.Println("open:", conns.Open())
	// Output:
	// third connection allowed: false
	// open: 0
}
