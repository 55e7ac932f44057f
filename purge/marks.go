package purge

import "time"

// marks remembers the generation of the last purge of each storage key
// and surrogate key, for fills and revalidations that race a purge. It
// holds at most maxMarks marks: the oldest is dropped first, and so are
// marks older than markHorizon. A dropped mark is not forgotten but
// folded into floor, so that what is dropped errs towards refusing: every
// fill begun before a dropped mark counts as purged, as a purge-all makes
// every fill begun before it count. Adding a mark is O(1) amortised,
// whatever the burst of purges. It is guarded by Store.mu.
type marks struct {
	last  map[string]uint64 // name -> generation of its last purge
	queue []queued          // marks in the order they were set; queue[head:] live
	head  int
	floor uint64 // fills begun before this generation count as purged
}

// queued is a mark in the order marks were set. A name marked again has
// an older entry left in the queue, recognised by its generation.
type queued struct {
	name string
	gen  uint64
	at   time.Time
}

// maxMarks bounds the marks kept (each a storage key or a surrogate key:
// some 100 bytes plus the name); markHorizon is how long a mark is kept
// when purges are few. A fill running longer than markHorizon across a
// purge, or across maxMarks purges, is refused although it might have
// been kept: it is fetched again on the next request.
const (
	markHorizon = 10 * time.Minute
	maxMarks    = 100000
)

func newMarks() marks { return marks{last: map[string]uint64{}} }

// add records that name was purged at generation gen, at time now.
func (m *marks) add(name string, gen uint64, now time.Time) {
	for m.head < len(m.queue) && (len(m.queue)-m.head >= maxMarks || now.Sub(m.queue[m.head].at) > markHorizon) {
		m.drop()
	}
	if m.head > len(m.queue)/2 {
		// Slide the live marks down once half the slice is dropped ones:
		// each mark is moved at most once on average.
		// A queue much bigger than what it holds (after a burst) is
		// given back.
		live := m.queue[m.head:]
		if cap(m.queue) > 4*len(live)+1024 {
			m.queue = append(make([]queued, 0, 2*len(live)+16), live...)
		} else {
			n := copy(m.queue, live)
			clear(m.queue[n:])
			m.queue = m.queue[:n]
		}
		m.head = 0
	}
	m.queue = append(m.queue, queued{name, gen, now})
	m.last[name] = gen
}

// drop removes the oldest mark, folding it into floor.
func (m *marks) drop() {
	q := m.queue[m.head]
	m.queue[m.head] = queued{}
	m.head++
	if m.last[q.name] == q.gen { // not marked again since
		delete(m.last, q.name)
		m.floor = max(m.floor, q.gen)
	}
}

// all records a purge of everything at generation gen: it covers every
// older mark.
func (m *marks) all(gen uint64) {
	clear(m.last)
	clear(m.queue)
	m.queue, m.head = m.queue[:0], 0
	m.floor = gen
}

// since reports whether name was purged after generation gen, or may have
// been (its mark was dropped).
func (m *marks) since(name string, gen uint64) bool {
	return m.floor > gen || m.last[name] > gen
}

// len returns the number of marks held.
func (m *marks) len() int { return len(m.queue) - m.head }
