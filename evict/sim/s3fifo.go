package sim

import "container/list"

// S3FIFO is the published S3-FIFO: a small FIFO holding 10% of the bytes
// on probation, a main FIFO where an object with a frequency (2 bits) is
// reinserted with one spent, and a ghost FIFO of keys evicted from the
// small one, as many bytes as main holds, through which a returning key
// enters main directly.
type S3FIFO struct {
	capacity, smallTarget int64
	small, main, ghost    fifo
	items                 map[uint64]*list.Element // resident keys
	ghosts                map[uint64]*list.Element
}

type s3Item struct {
	key    uint64
	size   int64
	freq   int
	inMain bool
}

// fifo is a queue of *s3Item with their total size; front = oldest.
type fifo struct {
	l    list.List
	size int64
}

func (q *fifo) push(it *s3Item) *list.Element {
	q.size += it.size
	return q.l.PushBack(it)
}

func (q *fifo) pop() *s3Item {
	it := q.l.Remove(q.l.Front()).(*s3Item)
	q.size -= it.size
	return it
}

// NewS3FIFO returns an empty S3-FIFO cache of capacity bytes.
func NewS3FIFO(capacity int64) *S3FIFO {
	return &S3FIFO{
		capacity:    capacity,
		smallTarget: capacity / 10,
		items:       make(map[uint64]*list.Element),
		ghosts:      make(map[uint64]*list.Element),
	}
}

func (c *S3FIFO) Get(key uint64, size int64) bool {
	if e, ok := c.items[key]; ok {
		it := e.Value.(*s3Item)
		it.freq = min(it.freq+1, 3)
		return true
	}
	if size > c.capacity {
		return false
	}
	for c.small.size+c.main.size+size > c.capacity {
		if c.small.size > c.smallTarget || c.main.l.Len() == 0 {
			c.evictSmall()
		} else {
			c.evictMain()
		}
	}
	it := &s3Item{key: key, size: size}
	if g, ok := c.ghosts[key]; ok {
		c.ghost.size -= g.Value.(*s3Item).size
		c.ghost.l.Remove(g)
		delete(c.ghosts, key)
		it.inMain = true
		c.items[key] = c.main.push(it)
	} else {
		c.items[key] = c.small.push(it)
	}
	return false
}

// evictSmall moves the oldest small object to main if it was hit, and
// otherwise evicts it into the ghost.
func (c *S3FIFO) evictSmall() {
	it := c.small.pop()
	if it.freq > 0 {
		it.freq, it.inMain = 0, true
		c.items[it.key] = c.main.push(it)
		return
	}
	delete(c.items, it.key)
	c.ghosts[it.key] = c.ghost.push(&s3Item{key: it.key, size: it.size})
	for c.ghost.size > c.capacity-c.smallTarget {
		delete(c.ghosts, c.ghost.pop().key)
	}
}

// evictMain reinserts the oldest main object if it has a frequency left
// and evicts it otherwise.
func (c *S3FIFO) evictMain() {
	it := c.main.pop()
	if it.freq > 0 {
		it.freq--
		c.items[it.key] = c.main.push(it)
		return
	}
	delete(c.items, it.key)
}
