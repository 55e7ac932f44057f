package evict

// queue is an intrusive FIFO of entries: push at the back, evict from the
// head, remove from anywhere. Owned by Policy.mu.
type queue struct {
	head, tail *entry
	len        int
	weight     int64
}

func (q *queue) pushBack(e *entry) {
	e.prev, e.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = e
	} else {
		q.head = e
	}
	q.tail = e
	q.len++
	q.weight += e.weight
}

func (q *queue) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		q.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.prev, e.next = nil, nil
	q.len--
	q.weight -= e.weight
}

// ghost remembers recently evicted keys, without their data, up to a total
// weight equal to the main FIFO's share of the capacity. Owned by Policy.mu.
type ghost struct {
	limit  int64
	weight int64
	// ring holds keys in eviction order; seq maps a key to the sequence
	// number of its latest ring slot, so a stale slot for a key that was
	// removed (or re-added) is recognised when it falls off the ring.
	ring       []ghostSlot
	head, size int
	next       uint64
	seq        map[uint64]uint64
}

type ghostSlot struct {
	key    uint64
	weight int64
	seq    uint64
}

func (g *ghost) add(key uint64, weight int64) {
	for g.size > 0 && g.weight+weight > g.limit {
		g.pop()
	}
	if g.size == len(g.ring) {
		g.grow()
	}
	g.next++
	g.ring[(g.head+g.size)%len(g.ring)] = ghostSlot{key, weight, g.next}
	g.size++
	g.weight += weight
	g.seq[key] = g.next
}

// remove reports whether key was remembered, and forgets it.
func (g *ghost) remove(key uint64) bool {
	_, ok := g.seq[key]
	delete(g.seq, key)
	return ok
}

func (g *ghost) pop() {
	s := g.ring[g.head]
	g.head = (g.head + 1) % len(g.ring)
	g.size--
	g.weight -= s.weight
	if g.seq[s.key] == s.seq {
		delete(g.seq, s.key)
	}
}

func (g *ghost) grow() {
	ring := make([]ghostSlot, max(2*len(g.ring), 64))
	for i := range g.size {
		ring[i] = g.ring[(g.head+i)%len(g.ring)]
	}
	g.ring, g.head = ring, 0
}
