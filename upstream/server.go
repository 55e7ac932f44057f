package upstream

import (
	"hash/fnv"
	"math"
	"sync/atomic"
	"time"
)

// Server is one origin server of a Backend. The exported fields are config;
// the runtime state (in-flight requests, latency, health, ejection, counters)
// is shared by every Server value with the same Addr in the same Backend, so
// it survives a server set swap. A Server must not be copied once the Backend
// has adopted it.
type Server struct {
	Addr   string // host:port (or any name the caller dials)
	Weight int    // relative share of traffic; 0 means 1
	Backup bool   // used only when no primary server is usable

	id  uint64
	idx int // position in its server set; indexes Iter's tried set
	st  *state
}

// state is a server's runtime state. Every field is updated with atomics:
// Select reads them on the hot path without locks.
type state struct {
	inflight     atomic.Int64
	unhealthy    atomic.Bool   // set by active health checks
	ejectedUntil atomic.Int64  // Backend.now time; 0 when never ejected
	fails        atomic.Int32  // consecutive failures since the last success
	streak       atomic.Int32  // ejections in a row, for the doubling back-off
	cost         atomic.Uint64 // float64 bits: peak-EWMA latency in nanoseconds
	costAt       atomic.Int64  // Backend.now time of the last cost update

	requests  atomic.Uint64
	errors    atomic.Uint64
	ejections atomic.Uint64
}

// ID is a stable hash of the server address: sticky session cookies carry it.
func (s *Server) ID() uint64 { return s.id }

func (s *Server) weight() int {
	if s.Weight <= 0 {
		return 1
	}
	return s.Weight
}

// usable reports whether s may be chosen at now (Backend.now time).
func (s *Server) usable(now int64) bool {
	return !s.st.unhealthy.Load() && s.st.ejectedUntil.Load() <= now
}

// Inflight returns the number of attempts started on s and not yet reported.
func (s *Server) Inflight() int64 { return s.st.inflight.Load() }

// Stats is a snapshot of a server's counters and state, for metrics.
type Stats struct {
	Addr      string
	Weight    int           // as configured (0 means 1)
	Backup    bool          // in the backup group
	Requests  uint64        // attempts reported
	Errors    uint64        // attempts reported as a failure
	Ejections uint64        // times ejected by outlier detection
	Inflight  int64         // attempts in progress
	Healthy   bool          // as last set by active health checks
	Ejected   bool          // currently ejected
	Latency   time.Duration // peak-EWMA latency estimate, decayed to now
}

func (s *Server) stats(now int64, decay time.Duration) Stats {
	st := s.st
	return Stats{
		Addr:      s.Addr,
		Weight:    s.Weight,
		Backup:    s.Backup,
		Requests:  st.requests.Load(),
		Errors:    st.errors.Load(),
		Ejections: st.ejections.Load(),
		Inflight:  st.inflight.Load(),
		Healthy:   !st.unhealthy.Load(),
		Ejected:   st.ejectedUntil.Load() > now,
		Latency:   time.Duration(s.latency(now, decay)),
	}
}

// latency returns the peak-EWMA latency estimate in nanoseconds, decayed
// towards zero for the time since the last sample: a server that stopped
// getting traffic because it was slow is tried again after a while.
func (s *Server) latency(now int64, decay time.Duration) float64 {
	cost := math.Float64frombits(s.st.cost.Load())
	if cost == 0 {
		return 0
	}
	return cost * decayFactor(now-s.st.costAt.Load(), decay)
}

// observe folds one latency sample into the peak-EWMA estimate: a sample
// above the estimate replaces it at once (peak), a lower one is averaged in
// with a weight that grows with the time since the last sample.
//
// The compare-and-swap keeps concurrent samples from being lost; the time
// stamp is stored after it, so a reader may briefly decay a fresh value by
// a slightly longer interval. That is harmless for load balancing and keeps
// locks off the hot path.
func (s *Server) observe(now int64, rtt time.Duration, decay time.Duration) {
	sample := float64(rtt)
	for range 8 {
		oldBits := s.st.cost.Load()
		old := math.Float64frombits(oldBits)
		w := decayFactor(now-s.st.costAt.Load(), decay)
		next := sample
		if sample < old {
			next = old*w + sample*(1-w)
		}
		if s.st.cost.CompareAndSwap(oldBits, math.Float64bits(next)) {
			s.st.costAt.Store(now)
			return
		}
	}
}

// decayFactor is exp(-elapsed/decay), clamped for clocks that step back.
// Samples usually come milliseconds apart against a decay of seconds, so
// the short series, exact to 1e-8 there, saves most calls to math.Exp.
func decayFactor(elapsed int64, decay time.Duration) float64 {
	if elapsed <= 0 {
		return 1
	}
	x := float64(elapsed) / float64(decay)
	if x < 1.0/64 {
		return 1 - x*(1-x*(0.5-x/6))
	}
	return math.Exp(-x)
}

// serverID hashes an address to the stable id used by sticky cookies.
func serverID(addr string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(addr))
	return h.Sum64()
}
