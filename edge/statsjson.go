package edge

import (
	"github.com/outpost-edge/outpost/pool"
	"github.com/outpost-edge/outpost/upstream"
)

// The JSON forms of GET /stats. Every key is snake_case, and a figure with
// a unit names it: durations are in seconds (a float), sizes in bytes.
// README.md's "Admin API" section lists the keys.

// upstreamStats is one upstream.
type upstreamStats struct {
	Servers     map[string]serverStats `json:"servers"` // by address
	Circuit     circuitStats           `json:"circuit"`
	Connections *poolStats             `json:"connections,omitempty"` // HTTP/1.1 pool; absent for HTTP/2
}

// bucketStats is a type s3 upstream.
type bucketStats struct {
	Requests uint64 `json:"requests"` // sent to the store
	Errors   uint64 `json:"errors"`   // failed, or answered what is relayed as 502 or 503
	InFlight int64  `json:"in_flight"`
}

// serverStats is one server of an upstream.
type serverStats struct {
	Weight         int     `json:"weight"`
	Backup         bool    `json:"backup"`
	Requests       uint64  `json:"requests"`  // attempts
	Errors         uint64  `json:"errors"`    // attempts that failed
	Ejections      uint64  `json:"ejections"` // times ejected by passive checks
	InFlight       int64   `json:"in_flight"`
	Healthy        bool    `json:"healthy"` // as the active checks last said
	Ejected        bool    `json:"ejected"`
	LatencySeconds float64 `json:"latency_seconds"` // peak-EWMA estimate
}

func newServerStats(st upstream.Stats) serverStats {
	return serverStats{Weight: st.Weight, Backup: st.Backup, Requests: st.Requests, Errors: st.Errors,
		Ejections: st.Ejections, InFlight: st.Inflight, Healthy: st.Healthy, Ejected: st.Ejected,
		LatencySeconds: st.Latency.Seconds()}
}

// circuitStats is the upstream's concurrency limits and refusals.
type circuitStats struct {
	Active       int64  `json:"active"`        // requests holding a slot
	Pending      int64  `json:"pending"`       // requests waiting for one
	CircuitOpen  uint64 `json:"circuit_open"`  // requests refused: no slot
	BudgetDenied uint64 `json:"budget_denied"` // retries refused by the budget
	NoServer     uint64 `json:"no_server"`     // picks that found no usable server
}

func newCircuitStats(c upstream.Counters) circuitStats {
	return circuitStats{Active: c.Active, Pending: c.Pending, CircuitOpen: c.CircuitOpen,
		BudgetDenied: c.BudgetDenied, NoServer: c.NoServer}
}

// poolStats is the upstream's connection pool.
type poolStats struct {
	Opened uint64 `json:"opened"` // connections dialled
	Reused uint64 `json:"reused"` // idle connections handed out again
	Active int    `json:"active"`
	Idle   int    `json:"idle"`
}

func newPoolStats(p pool.Stats) *poolStats {
	return &poolStats{Opened: p.Dials, Reused: p.Reuses, Active: p.Active, Idle: p.Idle}
}
