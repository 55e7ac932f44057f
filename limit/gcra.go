package limit

import (
	"hash/maphash"
	"sync/atomic"
	"time"
)

// A slot packs one key's state in 64 bits so it can be swapped atomically:
// the top fpBits of the key's hash, then its theoretical arrival time (TAT,
// GCRA's one number of state) in microseconds since the limiter's epoch,
// modulo 2^tatBits.
//
// The TAT is only ever compared with "now" as a signed difference. A live
// TAT is at most one burst (the tolerance) ahead of now, so a difference
// outside (0, tolerance] means the slot holds no debt and is as good as
// empty. The modulus (2^44 µs, about 203 days) only has to exceed twice the
// tolerance: an idle slot whose TAT wraps round into the live window is
// possible but would need the same set to stay untouched for 203 days and
// land within one tolerance of the right phase.
const (
	tatBits = 44
	fpBits  = 64 - tatBits
	tatMask = 1<<tatBits - 1

	// maxTolerance bounds Burst × emission interval: far below the modulus.
	maxTolerance = 24 * time.Hour

	ways         = 8 // slots per set: one 64-byte cache line
	defaultSlots = 1 << 20
	maxAttempts  = 4 // CAS retries before failing open
)

// Limiter applies one Limit to any number of keys with the generic cell
// rate algorithm (GCRA, a token bucket that stores one time per key). Its
// memory is fixed when it is made: a table of sets of eight 8-byte slots,
// indexed by a seeded hash of the key and told apart by a 20-bit
// fingerprint. A key not found takes the slot in its set that is closest to
// a full bucket (an idle one if any), so a key only loses its state when
// eight keys of one set are all being limited at once; it then starts again
// with a full burst. Two keys of one set that share a fingerprint (a chance
// of about 8 in 2^20 per new key) share a bucket until one is evicted.
//
// A Limiter is safe for concurrent use and allocates nothing per call. It
// must not be copied.
type Limiter struct {
	limit     Limit
	interval  int64 // emission interval, µs per request
	tolerance int64 // Burst × interval, µs
	setMask   uint64
	slots     []atomic.Uint64
	seed      maphash.Seed
	epoch     time.Time
}

// New returns a Limiter for l with room for about slots active keys
// (rounded up to a power of two, at least 8; zero means 1<<20, which takes
// 8 MiB).
func New(l Limit, slots int) (*Limiter, error) {
	if err := l.Validate(); err != nil {
		return nil, err
	}
	l = l.WithDefaults()
	if slots <= 0 {
		slots = defaultSlots
	}
	sets := 1
	for sets*ways < slots {
		sets <<= 1
	}
	interval := int64(l.Period/time.Duration(l.Rate)) / int64(time.Microsecond)
	return &Limiter{
		limit:     l,
		interval:  interval,
		tolerance: interval * int64(l.Burst),
		setMask:   uint64(sets - 1),
		slots:     make([]atomic.Uint64, sets*ways),
		seed:      maphash.MakeSeed(),
		epoch:     time.Now(),
	}, nil
}

// Limit returns the limit the Limiter applies, defaults filled.
func (l *Limiter) Limit() Limit { return l.limit }

// Slots returns the size of the table.
func (l *Limiter) Slots() int { return len(l.slots) }

// Allow counts one request for key at now and says whether it is within the
// limit. A refused request is not counted.
func (l *Limiter) Allow(key []byte, now time.Time) Decision { return l.AllowN(key, 1, now) }

// AllowN is Allow for a request that costs n (n ≥ 1) of the key's quota,
// all or nothing: a cost above Burst is never allowed.
func (l *Limiter) AllowN(key []byte, n int, now time.Time) Decision {
	cost := l.interval * int64(max(n, 1))
	t := now.Sub(l.epoch).Microseconds()
	h := maphash.Bytes(l.seed, key)
	i := (h & l.setMask) * ways
	set := l.slots[i : i+ways : i+ways]
	fp := h >> tatBits
	for range maxAttempts {
		j, old, ahead := l.find(set, fp, t)
		next := ahead + cost
		if next > l.tolerance {
			return Decision{
				RetryAfter: micros(next - l.tolerance),
				ResetAfter: micros(ahead),
			}
		}
		if set[j].CompareAndSwap(old, fp<<tatBits|uint64(t+next)&tatMask) {
			return Decision{
				Allowed:    true,
				Remaining:  int((l.tolerance - next) / l.interval),
				ResetAfter: micros(next),
			}
		}
	}
	// The set is too contended to settle: let the request through rather
	// than stall it.
	return Decision{Allowed: true}
}

// find returns the slot to use for fingerprint fp at time t, its current
// value, and how far its TAT is ahead of t (0 for a fresh bucket).
func (l *Limiter) find(set []atomic.Uint64, fp uint64, t int64) (slot int, old uint64, ahead int64) {
	victim, victimAhead := 0, int64(-1)
	for j := range set {
		v := set[j].Load()
		a := l.ahead(v, t)
		if v>>tatBits == fp {
			return j, v, a
		}
		if victimAhead < 0 || a < victimAhead {
			victim, victimAhead, old = j, a, v
		}
	}
	return victim, old, 0
}

// ahead returns how far the TAT in slot value v is ahead of t, or 0 when the
// slot holds no debt.
func (l *Limiter) ahead(v uint64, t int64) int64 {
	d := int64((v-uint64(t))<<fpBits) >> fpBits // signed difference mod 2^tatBits
	if d <= 0 || d > l.tolerance {
		return 0
	}
	return d
}

func micros(us int64) time.Duration { return time.Duration(us) * time.Microsecond }
