// Package pool keeps reusable upstream connections keyed by peer, in the
// manner of Pingora's pingora-pool: a per-key idle list used most recent
// first, a bound on idle connections per key, an idle timeout enforced both
// when a connection is taken and by a janitor goroutine, and an optional
// bound on all connections per key with waiters queued until one frees.
//
// It knows whether a connection may be reused, never what protocol it
// speaks: the client package decides that and dials. net/http's default
// Transport keeps two idle connections per host, which under load turns most
// requests into new dials; Outpost aims at 99.9% reuse.
//
// Each connection taken with Get holds one of its key's slots until the
// caller returns it with Put (reusable) or Discard (closed or handed off).
package pool

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// Conn is a pooled connection; the pool only ever closes it.
type Conn interface {
	Close() error
}

// Key names the peer a connection leads to. Connections are shared only
// between requests with equal keys.
type Key struct {
	Addr string // "host:port" dialled
	TLS  bool
	SNI  string // TLS server name
	Tag  string // anything else that makes connections unshareable (client certificate, ALPN)
}

func (k Key) String() string {
	if !k.TLS {
		return k.Addr
	}
	return fmt.Sprintf("%s tls sni=%s %s", k.Addr, k.SNI, k.Tag)
}

// ErrClosed is returned by Get after Close.
var ErrClosed = errors.New("pool: closed")

// Config is the pool's configuration. The zero value is usable.
type Config struct {
	// MaxIdle bounds the idle connections kept per key; the least recently
	// used is closed to make room. Zero means 128; negative means none.
	MaxIdle int
	// IdleTimeout closes a connection idle for longer. Zero means 60s.
	IdleTimeout time.Duration
	// MaxConns bounds the connections per key, idle and in use. Get waits
	// for a slot when the bound is reached. Zero means unlimited.
	MaxConns int
}

func (c Config) withDefaults() Config {
	if c.MaxIdle == 0 {
		c.MaxIdle = 128
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
	return c
}

// Stats counts one key's connections, or all keys' in Totals.
type Stats struct {
	Dials  uint64 // connections dialled successfully
	Reuses uint64 // idle connections handed out again
	Active int    // connections taken and not yet returned (dialling included)
	Idle   int    // connections waiting in the idle list
}

// Pool holds idle connections. It is safe for concurrent use and must not
// be copied. Close stops its janitor.
type Pool struct {
	cfg Config

	mu     sync.Mutex
	peers  map[Key]*peer
	closed bool

	stop chan struct{}
	done chan struct{}
}

// peer is one key's state, guarded by Pool.mu.
type peer struct {
	idle    []idleConn // oldest first; taken from the end
	active  int
	waiters []chan Conn // FIFO; a nil Conn sent means "dial, the slot is yours"
	stats   Stats
	// retired: Retain dropped the key while connections were in use; it
	// keeps none idle and goes once the last is back.
	retired bool
}

type idleConn struct {
	c     Conn
	since time.Time
}

// New returns a pool and starts its janitor goroutine, which runs until
// Close.
func New(cfg Config) *Pool {
	p := &Pool{
		cfg:   cfg.withDefaults(),
		peers: make(map[Key]*peer),
		stop:  make(chan struct{}),
		done:  make(chan struct{}),
	}
	go p.janitor()
	return p
}

// Config returns the configuration in effect, defaults filled in.
func (p *Pool) Config() Config { return p.cfg }

// Dial is how Get makes a new connection for a key.
type Dial func(ctx context.Context) (Conn, error)

// Get returns an idle connection for key, most recently used first, with
// how long it sat idle; or dials a new one, with idle Fresh. When MaxConns
// connections are already in use it waits, until ctx is done, for one to
// be put back or discarded. The caller must end with Put or Discard.
func (p *Pool) Get(ctx context.Context, key Key, dial Dial) (c Conn, idle time.Duration, err error) {
	return p.get(ctx, key, dial, true)
}

// Fresh is the idle time Get gives a connection it dialled.
const Fresh time.Duration = -1

// GetNew is Get without taking an idle connection: it always dials, within
// MaxConns. It is for a retry after a reused connection failed.
func (p *Pool) GetNew(ctx context.Context, key Key, dial Dial) (Conn, error) {
	c, _, err := p.get(ctx, key, dial, false)
	return c, err
}

func (p *Pool) get(ctx context.Context, key Key, dial Dial, takeIdle bool) (Conn, time.Duration, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, Fresh, ErrClosed
	}
	pr := p.peer(key)
	var expired []idleConn
	if takeIdle {
		now := time.Now()
		expired = pr.dropExpired(now.Add(-p.cfg.IdleTimeout))
		if n := len(pr.idle); n > 0 {
			ic := pr.idle[n-1]
			pr.idle[n-1] = idleConn{}
			pr.idle = pr.idle[:n-1]
			pr.active++
			pr.stats.Reuses++
			p.mu.Unlock()
			closeAll(expired)
			return ic.c, max(0, now.Sub(ic.since)), nil
		}
	}
	if p.cfg.MaxConns <= 0 || pr.active+len(pr.idle) < p.cfg.MaxConns {
		pr.active++
		p.mu.Unlock()
		closeAll(expired)
		c, err := p.dial(ctx, key, dial)
		return c, Fresh, err
	}
	if takeIdle || len(pr.idle) == 0 {
		w := make(chan Conn, 1)
		pr.waiters = append(pr.waiters, w)
		p.mu.Unlock()
		closeAll(expired)
		return p.wait(ctx, key, dial, w, takeIdle)
	}
	// GetNew at the limit with idle connections: make room by closing the
	// oldest, which is the one least likely to be reused.
	old := pr.removeOldest()
	pr.active++
	p.mu.Unlock()
	old.Close()
	c, err := p.dial(ctx, key, dial)
	return c, Fresh, err
}

// peer returns key's state, creating it. p.mu must be held.
func (p *Pool) peer(key Key) *peer {
	pr := p.peers[key]
	if pr == nil {
		pr = &peer{}
		p.peers[key] = pr
	}
	return pr
}

// wait blocks until a slot is handed over on w or ctx is done.
func (p *Pool) wait(ctx context.Context, key Key, dial Dial, w chan Conn, takeIdle bool) (Conn, time.Duration, error) {
	select {
	case c := <-w:
		if c != nil && !takeIdle {
			c.Close() // GetNew wants a fresh connection in this slot
			c = nil
		}
		return p.handedOver(ctx, key, dial, c)
	case <-ctx.Done():
	}
	p.mu.Lock()
	pr := p.peers[key]
	for i, x := range pr.waiters {
		if x == w {
			pr.waiters = append(pr.waiters[:i], pr.waiters[i+1:]...)
			p.mu.Unlock()
			return nil, Fresh, fmt.Errorf("pool: waiting for a connection to %s: %w", key, ctx.Err())
		}
	}
	p.mu.Unlock()
	// Handed a slot while giving up: pass it on.
	if c := <-w; c != nil {
		p.Put(key, c)
	} else {
		p.Discard(key, nil)
	}
	return nil, Fresh, fmt.Errorf("pool: waiting for a connection to %s: %w", key, ctx.Err())
}

// handedOver completes a wait: c is a reusable connection, just put back
// (idle 0), or nil meaning the slot is ours to dial into. A closed pool
// hands over nil too.
func (p *Pool) handedOver(ctx context.Context, key Key, dial Dial, c Conn) (Conn, time.Duration, error) {
	if c != nil {
		p.mu.Lock()
		pr := p.peer(key)
		pr.stats.Reuses++
		p.mu.Unlock()
		return c, 0, nil
	}
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.Discard(key, nil)
		return nil, Fresh, ErrClosed
	}
	c, err := p.dial(ctx, key, dial)
	return c, Fresh, err
}

// dial makes a connection in a slot already counted as active.
func (p *Pool) dial(ctx context.Context, key Key, dial Dial) (Conn, error) {
	c, err := dial(ctx)
	if err != nil {
		p.Discard(key, nil)
		return nil, err
	}
	p.mu.Lock()
	p.peer(key).stats.Dials++
	p.mu.Unlock()
	return c, nil
}

// Put returns a connection that may be reused. It goes to the first waiter,
// or to the idle list, which may close the least recently used connection
// to stay within MaxIdle.
func (p *Pool) Put(key Key, c Conn) {
	p.mu.Lock()
	pr := p.peer(key)
	if len(pr.waiters) > 0 {
		w := pr.waiters[0]
		pr.waiters = append(pr.waiters[:0], pr.waiters[1:]...)
		p.mu.Unlock()
		w <- c // the slot moves with the connection
		return
	}
	pr.active--
	if p.closed || p.cfg.MaxIdle < 0 || pr.retired {
		p.forgetRetired(key, pr)
		p.mu.Unlock()
		c.Close()
		return
	}
	var evicted Conn
	if len(pr.idle) >= p.cfg.MaxIdle {
		evicted = pr.removeOldest()
	}
	pr.idle = append(pr.idle, idleConn{c: c, since: time.Now()})
	p.mu.Unlock()
	if evicted != nil {
		evicted.Close()
	}
}

// Discard frees the slot of a connection that will not be reused, closing
// c unless it is nil (a failed dial, or a connection handed to the caller
// for good, such as a protocol upgrade).
func (p *Pool) Discard(key Key, c Conn) {
	if c != nil {
		c.Close()
	}
	p.mu.Lock()
	pr := p.peer(key)
	if len(pr.waiters) > 0 {
		w := pr.waiters[0]
		pr.waiters = append(pr.waiters[:0], pr.waiters[1:]...)
		p.mu.Unlock()
		w <- nil // the waiter dials in the freed slot
		return
	}
	pr.active--
	p.forgetRetired(key, pr)
	p.mu.Unlock()
}

// Retain drops the state of every key for which keep is false (servers
// that left the owner's set), so that the pool holds only keys in use:
// their idle connections are closed and their counters go. A key with
// connections in use goes when the last is returned, and keeps none idle
// meanwhile. A key taken again later starts afresh.
func (p *Pool) Retain(keep func(Key) bool) {
	var idle []idleConn
	p.mu.Lock()
	for k, pr := range p.peers {
		pr.retired = !keep(k)
		if pr.retired {
			idle = append(idle, pr.idle...)
			pr.idle = nil
			p.forgetRetired(k, pr)
		}
	}
	p.mu.Unlock()
	closeAll(idle)
}

// forgetRetired drops a retired key's state once nothing uses it. p.mu
// must be held.
func (p *Pool) forgetRetired(key Key, pr *peer) {
	if pr.retired && pr.active == 0 && len(pr.waiters) == 0 && len(pr.idle) == 0 {
		delete(p.peers, key)
	}
}

// Keys returns how many keys the pool holds state for.
func (p *Pool) Keys() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.peers)
}

// dropExpired removes idle connections idle since before cutoff and returns
// them for closing outside the lock. The list is oldest first, so they are
// a prefix.
func (pr *peer) dropExpired(cutoff time.Time) []idleConn {
	n := 0
	for n < len(pr.idle) && pr.idle[n].since.Before(cutoff) {
		n++
	}
	if n == 0 {
		return nil
	}
	expired := append([]idleConn(nil), pr.idle[:n]...)
	pr.idle = append(pr.idle[:0], pr.idle[n:]...)
	clear(pr.idle[len(pr.idle):cap(pr.idle)][:n])
	return expired
}

// removeOldest takes the least recently used idle connection out.
func (pr *peer) removeOldest() Conn {
	c := pr.idle[0].c
	n := copy(pr.idle, pr.idle[1:])
	pr.idle[n] = idleConn{}
	pr.idle = pr.idle[:n]
	return c
}

func closeAll(cs []idleConn) {
	for _, ic := range cs {
		ic.c.Close()
	}
}

// Stats returns key's counters. A key's state, counters included, lives
// until Retain drops the key, so counters only grow while the owner keeps
// it; the pool holds the keys its owner uses (see Retain).
func (p *Pool) Stats(key Key) Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	pr := p.peers[key]
	if pr == nil {
		return Stats{}
	}
	s := pr.stats
	s.Active, s.Idle = pr.active, len(pr.idle)
	return s
}

// Totals returns the counters summed over every key.
func (p *Pool) Totals() Stats {
	p.mu.Lock()
	defer p.mu.Unlock()
	var s Stats
	for _, pr := range p.peers {
		s.Dials += pr.stats.Dials
		s.Reuses += pr.stats.Reuses
		s.Active += pr.active
		s.Idle += len(pr.idle)
	}
	return s
}

// Close stops the janitor, closes every idle connection and fails waiters.
// Connections in use are closed when they are put back.
func (p *Pool) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	var idle []idleConn
	var waiters []chan Conn
	for _, pr := range p.peers {
		idle = append(idle, pr.idle...)
		pr.idle = nil
		waiters = append(waiters, pr.waiters...)
		pr.active += len(pr.waiters) // each waiter is handed a slot, then discards it
		pr.waiters = nil
	}
	p.mu.Unlock()
	close(p.stop)
	<-p.done
	closeAll(idle)
	for _, w := range waiters {
		w <- nil
	}
	return nil
}

// janitor closes expired idle connections every half IdleTimeout (at
// most every millisecond). It is owned by the pool and stops when Close
// closes p.stop.
func (p *Pool) janitor() {
	defer close(p.done)
	t := time.NewTicker(max(p.cfg.IdleTimeout/2, time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.sweep(now)
		}
	}
}

// sweep closes the connections idle since before now minus IdleTimeout.
func (p *Pool) sweep(now time.Time) {
	cutoff := now.Add(-p.cfg.IdleTimeout)
	var expired []idleConn
	p.mu.Lock()
	for _, pr := range p.peers {
		expired = append(expired, pr.dropExpired(cutoff)...)
	}
	p.mu.Unlock()
	closeAll(expired)
}
