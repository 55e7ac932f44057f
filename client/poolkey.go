package client

import "github.com/outpost-edge/outpost/pool"

// PoolKey returns the pool key of connections to addr, to read the
// pool's per-server counters.
func (t *Transport) PoolKey(addr string) pool.Key {
	t.init()
	return t.key(addr)
}
