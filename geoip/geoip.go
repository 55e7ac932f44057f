// Package geoip answers "which country is this address in" from a
// MaxMind-format database (GeoLite2-Country, GeoIP2-Country or -City, or
// any .mmdb with a country.iso_code field), for the `country` variable of
// condition expressions. Reading the format is left to
// github.com/oschwald/maxminddb-golang; this package only picks the field
// and keeps the recent answers, since bots come back from the same
// addresses.
package geoip

import (
	"fmt"
	"net/netip"
	"sync"

	"github.com/oschwald/maxminddb-golang/v2"
)

// DB is an open country database. It is safe for concurrent use, and
// Reopen may switch it to another file while lookups run.
type DB struct {
	// mu guards r, and is held for reading across a lookup and the cache
	// update after it, so that Reopen neither closes a reader in use nor
	// lets an answer from the old file into the emptied cache.
	mu sync.RWMutex
	r  *maxminddb.Reader

	cmu   sync.Mutex
	cache map[netip.Addr]string // recent answers, emptied when full
}

// cacheSize bounds the answer cache.
const cacheSize = 1 << 16

// Open opens the database at path.
func Open(path string) (*DB, error) {
	r, err := maxminddb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip: %w", err)
	}
	return &DB{r: r, cache: make(map[netip.Addr]string)}, nil
}

// Reopen switches to the database at path (a new file, or the same path
// replaced in place) and forgets the answers of the old one. On error the
// old database stays in use.
func (db *DB) Reopen(path string) error {
	r, err := maxminddb.Open(path)
	if err != nil {
		return fmt.Errorf("geoip: %w", err)
	}
	db.mu.Lock()
	old := db.r
	db.r = r
	db.cmu.Lock()
	clear(db.cache)
	db.cmu.Unlock()
	db.mu.Unlock()
	return old.Close()
}

// Country returns the ISO 3166-1 code of ip's country ("DE"), or "" when
// the database does not know it.
func (db *DB) Country(ip netip.Addr) string {
	ip = ip.Unmap()
	db.mu.RLock()
	defer db.mu.RUnlock()
	db.cmu.Lock()
	c, ok := db.cache[ip]
	db.cmu.Unlock()
	if ok {
		return c
	}
	var code string
	if err := db.r.Lookup(ip).DecodePath(&code, "country", "iso_code"); err != nil {
		code = ""
	}
	db.cmu.Lock()
	if len(db.cache) >= cacheSize {
		clear(db.cache)
	}
	db.cache[ip] = code
	db.cmu.Unlock()
	return code
}

// Close releases the database.
func (db *DB) Close() error {
	db.mu.Lock()
	defer db.mu.Unlock()
	return db.r.Close()
}
