package sim

import "container/list"

// LRU evicts the least recently used objects.
type LRU struct {
	capacity, used int64
	order          *list.List // of lruItem; front = most recent
	items          map[uint64]*list.Element
}

type lruItem struct {
	key  uint64
	size int64
}

// NewLRU returns an empty LRU cache of capacity bytes.
func NewLRU(capacity int64) *LRU {
	return &LRU{capacity: capacity, order: list.New(), items: make(map[uint64]*list.Element)}
}

func (c *LRU) Get(key uint64, size int64) bool {
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return true
	}
	if size > c.capacity {
		return false
	}
	for c.used+size > c.capacity {
		it := c.order.Remove(c.order.Back()).(lruItem)
		delete(c.items, it.key)
		c.used -= it.size
	}
	c.items[key] = c.order.PushFront(lruItem{key, size})
	c.used += size
	return false
}
