// Package upstream chooses origin servers and keeps them honest: it holds a
// Backend's servers (primaries and a backup group), picks one per attempt with
// a Selector policy, ejects servers that keep failing (passive outlier
// detection), limits concurrency (circuit breaking), bounds retries with a
// budget, and swaps the server set when discovery finds a new one. It knows
// nothing of HTTP, caching or the proxy phases: the engine asks for the next
// candidate, makes the attempt itself and Reports how it went.
//
// One request goes like this:
//
//	var it upstream.Iter              // reused across requests
//	if err := b.Begin(ctx, &it, key); err != nil { ... } // ErrCircuitOpen: 503 fast
//	defer it.End()
//	for n := 1; ; n++ {
//		s, err := it.Next()           // ErrNoServer, ErrRetryBudget: stop
//		...attempt against s.Addr, judge it as an Outcome...
//		it.Report(s, outcome, took)
//		if !retry.Decide(upstream.Attempt{N: n, Outcome: outcome, ...}).Retry() { break }
//		time.Sleep(retry.Wait(n))     // or a timer with ctx
//	}
//
// Policies: RoundRobin, WeightedRoundRobin (nginx's smooth weighted round
// robin), Random, Ketama (consistent hashing on libketama's MD5 ring),
// LeastRequest (power of two choices on in-flight requests) and PeakEWMA
// (power of two choices on a decaying peak latency estimate times in-flight
// requests, as Finagle and Linkerd do). Each returns servers in order of
// preference: a retry gets the next one, never a server already tried for
// the request, and a server that is unhealthy or ejected is never returned.
// When no primary is usable the backup group is used.
//
// Around selection: Sticky pins clients to a server with a cookie,
// Discovery keeps the servers in line with DNS (A/AAAA and SRV), Retry
// decides which failures are retried, and Backoff spaces retries out.
// Active health checks live in package upstream/health; they report through
// an observer that the caller wires to Backend.SetHealthy. Metrics come from
// Backend.Stats and Backend.Counters as plain values; this package knows no
// metrics library.
//
// Runtime state (in-flight count, latency estimate, health, ejection) belongs
// to the server address, not to the config: when the server set is replaced
// (reload, DNS change) servers that remain keep their state, and requests in
// flight on removed servers finish normally.
package upstream
