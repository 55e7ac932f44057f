package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/outpost-edge/outpost/storage"
)

// A fill is one origin fetch that other requests for the same key may
// wait on (request collapsing). The leader decides what the fetch turned
// into and closes decided; when the response is being stored, a copier
// goroutine writes the origin body into the storage.Writer and every
// reader, the leader's client included, follows the writer through ReadAt
// as it grows, so no client waits for the whole body and a slow client
// slows no one else.
type fill struct {
	key string // primary key the fill is registered under

	// Set by the leader before decided is closed; read-only after.
	decided chan struct{}
	outcome outcome
	reason  Reason
	err     error
	objKey  string // storage key of the object being written
	metaB   []byte // its metadata
	size    int64  // expected body size, -1 when unknown
	epoch   uint64 // Vary marker epoch and field names, when the response varies
	vary    []byte
	hfpTTL  time.Duration

	w storage.Writer // written by the copier only, read by any reader

	// mu guards the fill's progress as readers see it.
	mu       sync.Mutex
	done     bool
	fillErr  error
	progress chan struct{} // closed and replaced after each write
}

type outcome uint8

const (
	outcomeStreaming outcome = iota + 1 // the body is being stored: read it through the fill
	outcomeUpdated                      // a 304 refreshed the stored object: look it up again
	outcomePass                         // uncacheable: go to the origin yourself
	outcomeFailed                       // the origin failed: err
)

// ErrFillAborted reports a body that could not be completed from the
// origin: the object was not stored, and clients following the fill get a
// truncated response.
var ErrFillAborted = errors.New("cache: origin body aborted")

func newFill(key string) *fill {
	return &fill{key: key, decided: make(chan struct{}), size: -1}
}

// decide publishes the leader's outcome to the waiters; only the first
// call counts. Only the leader calls it, so the check is not racy.
func (f *fill) decide(o outcome, reason Reason, err error) {
	select {
	case <-f.decided:
		return
	default:
	}
	f.outcome, f.reason, f.err = o, reason, err
	close(f.decided)
}

// copyBody is the copier: it owns body and the writer, and stops at the
// end of the body, on an origin or store error, or when the body passes
// maxSize. It commits only a complete body.
func (c *Cache) copyBody(f *fill, body io.ReadCloser, maxSize int64) {
	defer body.Close()
	var err error
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("cache: fill panicked: %v", p)
		}
		c.endFill(f, err)
	}()
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var n int64
	empty := 0
	for f.size < 0 || n < f.size {
		buf := *bp
		if f.size >= 0 { // never more than announced: the rest is not this body
			buf = buf[:min(int64(len(buf)), f.size-n)]
		}
		m, rerr := body.Read(buf)
		if m > 0 {
			n += int64(m)
			c.stats.BytesFromOrigin.Add(int64(m))
			if maxSize > 0 && n > maxSize {
				err = fmt.Errorf("%w: body passes %d bytes", storage.ErrTooLarge, maxSize)
				return
			}
			if _, werr := f.w.Write(buf[:m]); werr != nil {
				err = fmt.Errorf("cache: store write: %w", werr)
				return
			}
			f.notify()
		}
		if rerr == io.EOF {
			break
		}
		if m == 0 && rerr == nil {
			if empty++; empty > 100 {
				rerr = io.ErrNoProgress
			}
		}
		if rerr != nil {
			err = fmt.Errorf("%w: %w", ErrFillAborted, rerr)
			return
		}
	}
	if f.size >= 0 && n != f.size {
		err = fmt.Errorf("%w: got %d of %d bytes", ErrFillAborted, n, f.size)
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// endFill commits or aborts the writer, wakes the readers and unregisters
// the fill. Readers keep following the writer after Commit, which every
// Store supports (storagetest checks it).
func (c *Cache) endFill(f *fill, err error) {
	if err == nil {
		err = f.w.Commit()
	} else {
		f.w.Abort()
	}
	f.mu.Lock()
	f.done, f.fillErr = true, err
	close(f.progress)
	f.mu.Unlock()
	if err != nil {
		c.stats.Aborted.Add(1)
		c.log.Debug("cache fill not stored", "key", f.objKey, "err", err)
		if errors.Is(err, storage.ErrTooLarge) {
			c.setHitForPass(f.key, f.hfpTTL)
		}
	} else {
		c.stats.Stored.Add(1)
	}
	c.mu.Lock()
	if c.fills[f.key] == f {
		delete(c.fills, f.key)
	}
	c.mu.Unlock()
}

func (f *fill) notify() {
	f.mu.Lock()
	close(f.progress)
	f.progress = make(chan struct{})
	f.mu.Unlock()
}

// fillReader reads bytes [off, end) of a fill as they arrive; end is -1
// for "to the end of the body".
type fillReader struct {
	ctx      context.Context
	f        *fill
	off, end int64
}

func (r *fillReader) Read(p []byte) (int, error) {
	if r.end >= 0 {
		if r.off >= r.end {
			return 0, io.EOF
		}
		p = p[:min(int64(len(p)), r.end-r.off)]
	}
	f := r.f
	for {
		f.mu.Lock()
		done, ferr, wait := f.done, f.fillErr, f.progress
		f.mu.Unlock()
		if ferr != nil {
			return 0, ferr
		}
		if avail := f.w.Written(); r.off < avail {
			n, err := f.w.ReadAt(p[:min(int64(len(p)), avail-r.off)], r.off)
			r.off += int64(n)
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		}
		if done {
			if ferr != nil {
				return 0, ferr
			}
			return 0, io.EOF
		}
		select {
		case <-wait:
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		}
	}
}
