// Package storage defines where cached objects live: the Store interface that
// the memory and disk backends implement, and the object and writer types the
// cache uses. It knows nothing of HTTP freshness: metadata is opaque bytes that
// the cache package encodes, and a key is an opaque string the cache derives.
//
// An object becomes visible to Lookup only when its writer commits, so a fill
// that fails (origin reset mid-body, process killed) never leaves a truncated
// object behind. While a fill runs, the writer itself can be read, so clients
// waiting on the same key are served as the body streams in.
package storage

import (
	"errors"
	"io"
)

// Errors a Store returns.
var (
	// ErrNotFound: no committed object is stored under the key.
	ErrNotFound = errors.New("storage: object not found")
	// ErrTooLarge: the object exceeds what the store accepts; the fill
	// should continue to the client uncached.
	ErrTooLarge = errors.New("storage: object too large")
	// ErrAborted: the writer was aborted; its bytes are gone.
	ErrAborted = errors.New("storage: write aborted")
)

// Store holds objects under keys. Implementations are safe for concurrent use.
type Store interface {
	// Lookup returns the committed object stored under key, or ErrNotFound.
	// The caller must Close the object; the bytes stay readable until then
	// even if the object is deleted or replaced meanwhile.
	Lookup(key string) (Object, error)

	// Create starts writing a new object under key with the given metadata.
	// sizeHint is the expected body size, or -1 when unknown. The object
	// replaces any existing one under key only when the writer commits.
	Create(key string, meta []byte, sizeHint int64) (Writer, error)

	// UpdateMeta replaces the metadata of a committed object (a revalidation
	// refreshed its headers) without touching its body.
	UpdateMeta(key string, meta []byte) error

	// Delete removes the object under key; it reports whether one existed.
	Delete(key string) bool

	// Range calls fn for every committed object until fn returns false. It is
	// used to rebuild indexes (surrogate keys) and for purge-all; the meta
	// slice is only valid during the call.
	Range(fn func(key string, meta []byte) bool)

	// Stats reports the store's current occupancy and counters.
	Stats() Stats

	// Close releases the store's resources; a persistent store flushes its
	// index so that a restart finds the committed objects.
	Close() error
}

// Object is a committed object opened for reading.
type Object interface {
	io.ReaderAt
	// Meta returns the metadata given at Create (or the last UpdateMeta).
	// The caller must not modify it.
	Meta() []byte
	// Size returns the body length in bytes.
	Size() int64
	// Close releases the object.
	Close() error
}

// Bytes is implemented by objects whose body is held whole in memory; a hit
// can then write it to the socket without copying it first.
type Bytes interface {
	Bytes() []byte
}

// Writer writes one object's body. Exactly one of Commit or Abort must be
// called. Write may be called while other goroutines call ReadAt and Written
// on the same writer.
type Writer interface {
	io.Writer
	// ReadAt reads bytes already written (off+len(p) <= Written()); it lets
	// clients collapsed onto a fill follow it as it streams in.
	io.ReaderAt
	// Written returns the number of body bytes written so far.
	Written() int64
	// Commit makes the object visible under its key. A commit after an
	// error from Write fails.
	Commit() error
	// Abort discards the object.
	Abort()
}

// Releaser is implemented by writers that keep resources after Commit or
// Abort for the readers still following them: the disk store's writer keeps
// its file open. Call Release once Commit or Abort has returned and no
// reader follows the writer any more; it frees them at once. It is an
// optimisation, never needed for correctness: a store bounds on its own what
// unreleased writers hold, and ReadAt after Release still returns the
// committed bytes or an error, never other bytes (it may be slower, and fails
// once the object has been replaced or deleted). Writers that hold nothing
// after Commit do not implement it.
type Releaser interface {
	Release()
}

// Container is implemented by stores that can tell whether a key is stored
// without opening the object (from their index alone). It may err towards
// true for a key whose object has just gone.
type Container interface {
	Contains(key string) bool
}

// Adopter is implemented by stores that take in objects they did not
// write: the disk store adopts the objects that a process draining during
// a zero-downtime upgrade committed to the same directory. An index kept
// over the store (the surrogate keys of package purge) must hear of them:
// it calls OnAdopt before it reads the store with Range, and fn is then
// called with each object adopted, before Lookup can find it. fn returning
// false refuses the object, which is deleted.
type Adopter interface {
	OnAdopt(fn func(key string, meta []byte) bool)
}

// Stats describes a store.
type Stats struct {
	Objects   int64 // committed objects held
	Bytes     int64 // bytes held (bodies plus metadata)
	Capacity  int64 // configured bound in bytes
	Evictions int64 // objects evicted to make room, since start
}
