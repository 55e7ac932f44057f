// Package cache is Outpost's RFC 9111 shared cache. The engine hands each
// request of a caching route to Cache.Serve together with a function that
// reaches the origin; Serve answers from storage when it may, and otherwise
// fetches, decides whether the response may be stored, and streams it to
// the client while it is stored.
//
// Serve implements freshness (s-maxage, max-age, Expires, heuristics, the
// route's TTL bounds), Age, validation of stale objects with 304 updates,
// the request and response directives a shared cache honours, the
// edge-targeted fields of RFC 9213 (CDN-Cache-Control, Surrogate-Control),
// Vary through secondary keys, invalidation by unsafe methods, answers to
// conditional and Range requests, request collapsing with hit-for-pass,
// stale-while-revalidate and stale-if-error. Every reply carries Age and a
// Cache-Status (RFC 9211), and the trace records the key, the outcome, the
// source of the freshness lifetime and why an object was or was not stored.
//
// Objects live in a storage.Store under opaque keys; their metadata is a
// fixed binary prefix followed by the raw header block (see meta.go), so a
// hit decodes by slicing and allocates nothing. Purge primitives (by key,
// URL, everything; soft or hard) and EachTag serve the purge package; over
// its indexed store, whose purges are numbered, a fill or a revalidation
// whose request left before a purge stores nothing the purge made stale.
package cache

import (
	"context"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/trace"
)

// Origin is the cache's way to the origin for one request, handed to
// Serve by its caller: the proxy engine gives the request's upstream
// phases. It is the request's context too.
type Origin interface {
	context.Context
	// Fetch sends req to the origin and returns the response head and
	// body; the body must be closed. The cache passes a copy of the
	// client's request when it adds validators or asks for a full body.
	Fetch(req *httphead.Request) (*httphead.Response, io.ReadCloser, error)
	// Detach returns an Origin for work that outlives the request (a
	// fill other clients follow, a background refresh): its context is
	// not cancelled when the client goes away.
	Detach() Origin
}

// Fetch is a function that fetches from an origin; FuncOrigin makes an
// Origin of one.
type Fetch func(ctx context.Context, req *httphead.Request) (*httphead.Response, io.ReadCloser, error)

// FuncOrigin returns an Origin that calls fetch under ctx, and detaches
// with context.WithoutCancel: for callers with no request state to carry
// (tests, a cache used on its own).
func FuncOrigin(ctx context.Context, fetch Fetch) Origin { return funcOrigin{ctx, fetch} }

type funcOrigin struct {
	context.Context
	fetch Fetch
}

func (o funcOrigin) Fetch(req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
	return o.fetch(o.Context, req)
}

func (o funcOrigin) Detach() Origin { return funcOrigin{context.WithoutCancel(o.Context), o.fetch} }

// Options configure a Cache. The zero value works.
type Options struct {
	// Clock returns the current time; nil means time.Now. Tests inject a
	// fake one.
	Clock func() time.Time
	// Name is the cache's name in Cache-Status; "" means "Outpost".
	Name string
	// Logger receives debug events about fills; nil discards them.
	Logger *slog.Logger
}

// Stats are the cache's counters, updated atomically where decisions are
// made; the metrics package reads them.
type Stats struct {
	Hits            atomic.Int64 // served fresh from the cache
	Misses          atomic.Int64 // fetched because nothing usable was stored
	StaleServed     atomic.Int64 // served stale (SWR, SIE, max-stale)
	Revalidated     atomic.Int64 // stale objects confirmed by a 304
	Collapsed       atomic.Int64 // requests that waited on another's fetch
	Passes          atomic.Int64 // requests sent to the origin without caching
	Stored          atomic.Int64 // objects committed
	NotStored       atomic.Int64 // origin responses not stored (see Reason)
	Aborted         atomic.Int64 // fills abandoned (origin reset, too large)
	BytesFromCache  atomic.Int64 // body bytes served from storage
	BytesFromOrigin atomic.Int64 // body bytes read from origins
	Purged          atomic.Int64 // objects purged
}

// Cache is a shared HTTP cache over a storage.Store. It is safe for
// concurrent use; one Cache serves every route, each with its Policy.
type Cache struct {
	store storage.Store
	guard purgeGuard // store's purge generations, nil when it keeps none
	now   func() time.Time
	name  string
	log   *slog.Logger
	stats Stats
	keys  keyTable

	// mu guards fills (fetches in flight, by primary key: an entry lives
	// as long as its fetch, so they are bounded by the requests in flight)
	// and hfp (keys that recently answered uncacheable, to the Unix ns they
	// expire; at most maxHitForPass).
	mu    sync.Mutex
	fills map[string]*fill
	hfp   map[string]int64
	epoch atomic.Uint64 // source of Vary marker epochs

	// active counts the goroutines started by background; idle is closed
	// whenever it is zero. Both under mu.
	active int
	idle   chan struct{}

	// segMu guards segFlights: the segments an origin fetch is bringing,
	// by segment key, for readers that need them to wait on (segment.go).
	segMu      sync.Mutex
	segFlights map[string]*segFlight
	// large holds the keys whose body of unknown length proved too large
	// for the store: their next miss asks for segments. At most
	// maxHitForPass; under segMu.
	large map[string]struct{}

	// markerMu serialises the check-and-replace of a key's Vary marker,
	// striped by key; held across the store calls that do it.
	markerMu [64]sync.Mutex
}

// New returns a cache over store.
func New(store storage.Store, opts Options) *Cache {
	c := &Cache{store: store, now: opts.Clock, name: opts.Name, log: opts.Logger,
		fills: make(map[string]*fill), hfp: make(map[string]int64)}
	c.guard, _ = store.(purgeGuard)
	if c.now == nil {
		c.now = time.Now
	}
	if c.name == "" {
		c.name = "Outpost"
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.epoch.Store(uint64(c.now().UnixNano()))
	c.keys.seed = maphash.MakeSeed()
	return c
}

// purgeGuard is implemented by a store that numbers purges (the purge
// package's indexed store). A fill or a revalidation notes the generation
// when its request leaves for the origin and stores through the Since
// methods, which refuse what a purge made stale in the meantime: a body
// or a 304 sent before the purge must not make the purged object fresh.
type purgeGuard interface {
	Generation() uint64
	CreateSince(key string, meta []byte, sizeHint int64, gen uint64) (storage.Writer, error)
	UpdateMetaSince(key string, meta []byte, gen uint64) error
}

// generation returns the store's purge generation, 0 without a guard.
func (c *Cache) generation() uint64 {
	if c.guard == nil {
		return 0
	}
	return c.guard.Generation()
}

// create starts an object for a fill whose request left at generation gen.
func (c *Cache) create(key string, meta []byte, size int64, gen uint64) (storage.Writer, error) {
	if c.guard == nil {
		return c.store.Create(key, meta, size)
	}
	return c.guard.CreateSince(key, meta, size, gen)
}

// updateMeta records a revalidation whose request left at generation gen;
// it fails when a purge touched the object since.
func (c *Cache) updateMeta(key string, meta []byte, gen uint64) error {
	if c.guard == nil {
		return c.store.UpdateMeta(key, meta)
	}
	return c.guard.UpdateMetaSince(key, meta, gen)
}

// background runs fn in a goroutine that Drain waits for.
func (c *Cache) background(fn func()) {
	c.mu.Lock()
	if c.active == 0 {
		c.idle = make(chan struct{})
	}
	c.active++
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			if c.active--; c.active == 0 {
				close(c.idle)
			}
			c.mu.Unlock()
		}()
		fn()
	}()
}

// Drain waits until the fills and refreshes running in the background
// (bodies still being stored after their clients were served) have ended,
// or ctx is done. A graceful stop calls it before closing the store, so
// that those objects are committed rather than lost.
func (c *Cache) Drain(ctx context.Context) error {
	c.mu.Lock()
	if c.active == 0 {
		c.mu.Unlock()
		return nil
	}
	idle := c.idle
	c.mu.Unlock()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("cache: draining background fills: %w", ctx.Err())
	}
}

// Stats returns the cache's live counters.
func (c *Cache) Stats() *Stats { return &c.stats }

func note(tr *trace.Trace, detail string) {
	if tr != nil {
		tr.Add("cache", detail)
	}
}
