package purge

import (
	"iter"
	"maps"
	"slices"
	"sync/atomic"
)

// Cache is what a Purger needs of the cache: to purge one stored object
// (softly or not) and everything.
type Cache interface {
	Purge(storageKey string, soft bool) bool
	PurgeAll(soft bool) int
}

// Kind is a kind of purge, for metrics.
type Kind uint8

const (
	ByURL Kind = iota
	ByKey
	All
	kinds
)

func (k Kind) String() string {
	return [...]string{"url", "key", "all"}[k]
}

// Purger purges by surrogate key and all at once; URL purges go through
// the cache, which knows how a URL maps to a storage key.
type Purger struct {
	store *Store
	cache Cache
	// Counts holds purge operations by kind, and Objects the objects they
	// touched.
	Counts  [kinds]atomic.Int64
	Objects atomic.Int64
}

// New returns a Purger over the indexed store the cache uses.
func New(store *Store, cache Cache) *Purger { return &Purger{store: store, cache: cache} }

// Keys purges every object tagged with any of keys and returns how many.
func (p *Purger) Keys(keys []string, soft bool) int {
	n := 0
	for _, k := range keys {
		p.store.mark("tag:" + k)
		if soft {
			n += p.purge(slices.Values(p.store.Keys(k)), true)
			continue
		}
		n += p.purge(maps.Keys(p.store.take(k)), false)
	}
	p.count(ByKey, n)
	return n
}

// purge purges each storage key and returns how many objects it found.
func (p *Purger) purge(keys iter.Seq[string], soft bool) int {
	n := 0
	for k := range keys {
		if p.cache.Purge(k, soft) {
			n++
		}
	}
	return n
}

// All purges everything and returns how many objects it touched.
func (p *Purger) All(soft bool) int {
	p.store.markAll()
	n := p.cache.PurgeAll(soft)
	p.count(All, n)
	return n
}

// URL runs a URL purge done by the cache (which knows how a URL maps to
// storage keys), marking every key it deletes or updates so that fills
// racing it are refused, and counts it. found is what the cache reported.
func (p *Purger) URL(purge func() (found bool)) int {
	p.store.urlPurges.Add(1)
	found := purge()
	p.store.urlPurges.Add(-1)
	n := 0
	if found {
		n = 1
	}
	p.count(ByURL, n)
	return n
}

func (p *Purger) count(k Kind, n int) {
	p.Counts[k].Add(1)
	p.Objects.Add(int64(n))
}
