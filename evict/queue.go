package evict

// queue is an intrusive FIFO of slab entries, linked by slab index: push
// at the back, evict from the head, remove from anywhere. Owned by
// Policy.mu.
type queue struct {
	head, tail uint32 // 0: none
	len        int
	weight     int64
}

func (q *queue) pushBack(s *slab, i uint32) {
	e := s.at(i)
	e.prev, e.next = q.tail, 0
	if q.tail != 0 {
		s.at(q.tail).next = i
	} else {
		q.head = i
	}
	q.tail = i
	q.len++
	q.weight += e.weight
}

func (q *queue) remove(s *slab, i uint32) {
	e := s.at(i)
	if e.prev != 0 {
		s.at(e.prev).next = e.next
	} else {
		q.head = e.next
	}
	if e.next != 0 {
		s.at(e.next).prev = e.prev
	} else {
		q.tail = e.prev
	}
	e.prev, e.next = 0, 0
	q.len--
	q.weight -= e.weight
}
