package upstream

import (
	"context"
	"fmt"
	"sync/atomic"
)

// Limits configures a backend's circuit breaker. The zero value sets no
// limit.
type Limits struct {
	// MaxConcurrent is the number of requests that may be in progress on
	// the backend at once (from Begin to End, retries included). 0 means
	// no limit.
	MaxConcurrent int
	// MaxPending is the number of requests that may wait for a slot when
	// MaxConcurrent are in progress; any more fail at once with
	// ErrCircuitOpen. 0 means none wait.
	MaxPending int
}

// breaker admits requests under Limits. The channel holds one token per
// request in progress: a full channel means the limit is reached.
type breaker struct {
	slots      chan struct{} // nil when unlimited
	maxPending int64

	active  atomic.Int64
	pending atomic.Int64
}

func newBreaker(l Limits) (*breaker, error) {
	if l.MaxConcurrent < 0 || l.MaxPending < 0 {
		return nil, fmt.Errorf("negative limits %d concurrent, %d pending", l.MaxConcurrent, l.MaxPending)
	}
	br := &breaker{maxPending: int64(l.MaxPending)}
	if l.MaxConcurrent > 0 {
		br.slots = make(chan struct{}, l.MaxConcurrent)
	}
	return br, nil
}

// acquire takes a slot, waiting (as one of at most maxPending) while ctx
// allows when none is free.
func (br *breaker) acquire(ctx context.Context) error {
	if br.slots == nil {
		br.active.Add(1)
		return nil
	}
	select {
	case br.slots <- struct{}{}:
		br.active.Add(1)
		return nil
	default:
	}
	if br.pending.Add(1) > br.maxPending {
		br.pending.Add(-1)
		return ErrCircuitOpen
	}
	defer br.pending.Add(-1)
	select {
	case br.slots <- struct{}{}:
		br.active.Add(1)
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%w: gave up waiting: %w", ErrCircuitOpen, ctx.Err())
	}
}

func (br *breaker) release() {
	br.active.Add(-1)
	if br.slots != nil {
		<-br.slots
	}
}
