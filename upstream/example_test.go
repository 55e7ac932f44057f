package upstream_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/upstream"
)

// The attempt loop an engine runs for one request: Begin, then Next,
// attempt, Report and Decide until an attempt succeeds or may not be
// retried.
func ExampleBackend_Begin() {
	b, err := upstream.New(upstream.Config{Name: "index", Policy: upstream.RoundRobin{}},
		[]*upstream.Server{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}, {Addr: "10.0.0.3:80", Backup: true}})
	if err != nil {
		panic(err)
	}
	// Pretend the first two refuse connections.
	attempt := func(addr string) (upstream.Outcome, int) {
		if addr == "10.0.0.3:80" {
			return upstream.Success, 200
		}
		return upstream.ConnectError, 0
	}
	retry := upstream.Retry{MaxAttempts: 3}

	var it upstream.Iter // one per request slot, reused
	if err := b.Begin(context.Background(), &it, 0); err != nil {
		fmt.Println("503:", err) // ErrCircuitOpen
		return
	}
	defer it.End()
	for n := 1; ; n++ {
		s, err := it.Next()
		if errors.Is(err, upstream.ErrNoServer) || errors.Is(err, upstream.ErrRetryBudget) {
			fmt.Println("503:", err)
			return
		}
		start := time.Now()
		outcome, status := attempt(s.Addr)
		it.Report(s, outcome, time.Since(start))
		why := retry.Decide(upstream.Attempt{N: n, Outcome: outcome, Status: status, Idempotent: true})
		fmt.Printf("attempt %d: %s %s (%s)\n", n, s.Addr, outcome, why)
		if !why.Retry() {
			return
		}
	}
	// Output:
	// attempt 1: 10.0.0.2:80 connect error (connect failed)
	// attempt 2: 10.0.0.1:80 connect error (connect failed)
	// attempt 3: 10.0.0.3:80 success (success)
}

// Sticky sessions: honour the cookie while its server is usable, and set it
// when the request went elsewhere.
func ExampleSticky() {
	b, _ := upstream.New(upstream.Config{}, []*upstream.Server{{Addr: "10.0.0.1:80"}, {Addr: "10.0.0.2:80"}})
	st := upstream.Sticky{Cookie: "srv"}
	cookieHeader := []byte("srv=" + fmt.Sprintf("%016x", b.Server("10.0.0.2:80").ID()))

	var it upstream.Iter
	_ = b.Begin(context.Background(), &it, 0)
	defer it.End()
	id, ok := st.FromCookieHeader(cookieHeader)
	if ok {
		it.Prefer(id)
	}
	s, _ := it.Next()
	it.Report(s, upstream.Success, time.Millisecond)
	fmt.Println(s.Addr, st.NeedsCookie(id, ok, s))
	// Output: 10.0.0.2:80 false
}
