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
//
// A body of unknown length can turn out too large to store half-way, and a
// store can fail in the middle of a write (a full disk). The fill then spills: the writer keeps the bytes it has (readers behind
// still read them there) and the rest goes through a bounded in-memory
// window that the copier refills only as the slowest reader drains it, so
// the clients already attached get the whole body, at the pace of the
// slowest, and nothing is stored. The window keeps its start until the
// requests already waiting on the fill have attached; no reader may attach
// once it has moved on, and the writer is aborted when the last reader
// leaves. An origin error (5xx) with requests waiting on it is relayed the
// same way from its first byte, with nothing stored (relayOnly), so a
// failing origin is asked once per wave of requests, not once per request.
type fill struct {
	key string // primary key the fill is registered under

	// Set by the leader before decided is closed; read-only after.
	// decided is nil for a private fill, which no one waits on.
	decided chan struct{}
	settled bool // decide has run; the leader's only
	outcome outcome
	reason  Reason
	err     error
	objKey  string // storage key of the object being written
	metaB   []byte // its metadata
	size    int64  // expected body size, -1 when unknown
	epoch   uint64 // Vary marker epoch and field names, when the response varies
	vary    []byte
	hfpTTL  time.Duration
	// segmentable: a store's size limit makes the next miss ask for
	// segments rather than pass (segment.go).
	segmentable bool

	w storage.Writer // written by the copier only, read by any reader
	// bodyHere: the origin's first bytes had arrived when the copier
	// started, so a reader waits on the copier only, not the network.
	bodyHere bool

	// mu guards the fill's progress as readers see it, the readers' offsets
	// and the spill window.
	mu       sync.Mutex
	done     bool
	fillErr  error
	end      string        // once done: "stored", or why not (for the trace)
	progress chan struct{} // closed and replaced when bytes arrive or the fill ends
	readers  []*fillReader // attached readers
	pending  int           // waiters not yet attached nor gone: a spilled window keeps its start for them
	aborted  bool          // the writer has been aborted (spilled fills: by the last reader)
	released bool          // the writer's resources are released (storage.Releaser)
	spillAt  int64         // -1, or where the writer's bytes end and the window's begin
	window   []byte        // spilled bytes [windowAt, windowAt+len(window))
	windowAt int64
	consumed chan struct{} // closed and replaced when a reader advances or leaves
}

// spillWindow bounds the bytes a spilling fill holds for its readers.
const spillWindow = 1 << 20

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

// newFill returns a fill to register under key, for others to wait on.
func newFill(key string) *fill {
	f := privateFill(key)
	f.decided = make(chan struct{})
	return f
}

// privateFill returns a fill that is never registered: only its leader's
// client follows it.
func privateFill(key string) *fill {
	return &fill{key: key, size: -1, spillAt: -1}
}

// decide publishes the leader's outcome to the waiters; only the first
// call counts. Only the leader calls it, so the check is not racy.
func (f *fill) decide(o outcome, reason Reason, err error) {
	if f.settled {
		return
	}
	f.settled = true
	f.outcome, f.reason, f.err = o, reason, err
	if f.decided != nil {
		close(f.decided)
	}
}

// copyBody is the copier: it owns body and the writer, and stops at the
// end of the body, on an origin or store error, or when every reader of a
// spilled fill has left. It commits only a complete body.
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
			if err = c.put(f, buf[:m], n, maxSize); err != nil {
				return
			}
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

// relayOnly is the writer of a fill that stores nothing: every byte goes
// through the spill window (see Cache.settleRelay).
type relayOnly struct{}

func (relayOnly) Write([]byte) (int, error)         { return 0, errRelayOnly }
func (relayOnly) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }
func (relayOnly) Written() int64                    { return 0 }
func (relayOnly) Commit() error                     { return errRelayOnly }
func (relayOnly) Abort()                            {}

var errRelayOnly = errors.New("cache: relayed response is not stored")

// settleRelay makes f a relay from its first byte: nothing is stored, the
// waiters already there follow the body through the spill window, and
// later requests are not collapsed onto it.
func (c *Cache) settleRelay(f *fill) {
	c.mu.Lock()
	if c.fills[f.key] == f {
		delete(c.fills, f.key)
	}
	c.mu.Unlock()
	f.spillAt, f.windowAt, f.consumed = 0, 0, make(chan struct{})
}

// errUnread ends a spilled fill that no reader follows any more.
var errUnread = errors.New("cache: spilled body has no reader left")

// put hands one chunk (ending at offset total) to the store, or, once the
// body has proved too large to store or the store has failed, to the
// readers alone.
func (c *Cache) put(f *fill, p []byte, total, maxSize int64) error {
	if f.spillAt < 0 { // only the copier changes spillAt
		var k int
		var werr error
		if maxSize > 0 && total > maxSize {
			werr = fmt.Errorf("%w: body passes %d bytes", storage.ErrTooLarge, maxSize)
		} else {
			k, werr = f.w.Write(p)
		}
		if werr == nil {
			f.notify()
			return nil
		}
		c.spill(f, werr) // too large, or the store failed: the clients still get the body
		p = p[min(k, len(p)):]
	}
	return f.feed(p)
}

// spill turns f into a relay: it stops being joinable and the key passes
// for a while.
func (c *Cache) spill(f *fill, why error) {
	c.log.Debug("cache fill not stored, streaming it through", "key", f.objKey, "err", why)
	c.mu.Lock()
	if c.fills[f.key] == f {
		delete(c.fills, f.key)
	}
	c.mu.Unlock()
	if f.segmentable && errors.Is(why, storage.ErrTooLarge) {
		c.markLarge(f.key)
	} else {
		c.setHitForPass(f.key, f.hfpTTL)
	}
	f.mu.Lock()
	f.spillAt = f.w.Written()
	f.windowAt = f.spillAt
	f.consumed = make(chan struct{})
	f.mu.Unlock()
}

// feed appends p to the spill window, first waiting until the readers
// have drained enough of it.
func (f *fill) feed(p []byte) error {
	f.mu.Lock()
	for {
		if len(f.readers) == 0 && f.pending == 0 {
			f.mu.Unlock()
			return errUnread
		}
		low := f.windowAt + int64(len(f.window))
		for _, r := range f.readers {
			low = min(low, r.off)
		}
		if f.pending > 0 {
			low = min(low, f.spillAt)
		}
		if drop := low - f.windowAt; drop > 0 {
			n := copy(f.window, f.window[drop:])
			f.window = f.window[:n]
			f.windowAt = low
		}
		if len(f.window) < spillWindow {
			break
		}
		wait := f.consumed
		f.mu.Unlock()
		<-wait
		f.mu.Lock()
	}
	f.window = append(f.window, p...)
	close(f.progress)
	f.progress = make(chan struct{})
	f.mu.Unlock()
	return nil
}

// endFill commits or aborts the writer, wakes the readers and unregisters
// the fill. Readers keep following the writer after Commit, which every
// Store supports (storagetest checks it). A spilled fill ends cleanly
// when its body did; its writer goes when its last reader does. A failed
// Commit loses the object, not the body: every byte was written, so the
// readers still get them from the writer (or a read error, if the store
// dropped them), never a body cut short by the store.
func (c *Cache) endFill(f *fill, err error) {
	spilled := f.spillAt >= 0
	var notStored error
	switch {
	case spilled:
	case err == nil:
		notStored = f.w.Commit()
	default:
		f.w.Abort()
	}
	// Unregister before the readers see the end, so that a request that
	// comes after a client got the whole body looks the store up instead.
	c.mu.Lock()
	if c.fills[f.key] == f {
		delete(c.fills, f.key)
	}
	c.mu.Unlock()
	_, relay := f.w.(relayOnly)
	end := "stored"
	switch {
	case relay:
		end = "not stored: relayed"
	case err != nil:
		end = "not stored: body aborted"
	case spilled:
		end = "not stored: too large or the store failed"
	case notStored != nil:
		end = "not stored: the store refused it"
	}
	f.mu.Lock()
	f.done, f.fillErr, f.end = true, err, end
	f.abortUnfollowed()
	close(f.progress)
	f.mu.Unlock()
	switch {
	case relay:
	case err != nil || spilled || notStored != nil:
		c.stats.Aborted.Add(1)
		c.log.Debug("cache fill not stored", "key", f.objKey, "err", errors.Join(err, notStored))
	default:
		c.stats.Stored.Add(1)
	}
}

// result reports whether the fill has ended and, if so, what became of
// the object: "stored" once it is in the cache, else why not.
func (f *fill) result() (done bool, end string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done, f.end
}

// committed reports whether the object is in the cache.
func (f *fill) committed() bool {
	done, end := f.result()
	return done && end == "stored"
}

func (f *fill) notify() {
	f.mu.Lock()
	close(f.progress)
	f.progress = make(chan struct{})
	f.mu.Unlock()
}

// attach adds a reader of bytes [off, end) (end -1: to the end of the
// body). It fails on a spilled fill once its window has moved on.
func (f *fill) attach(r *fillReader, ctx context.Context, off, end int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.aborted || (f.spillAt >= 0 && f.windowAt != f.spillAt) {
		return false // the bytes a new reader needs first may be gone
	}
	*r = fillReader{ctx: ctx, f: f, off: off, end: end}
	f.readers = append(f.readers, r)
	return true
}

// detach removes a reader; the last reader of a finished spilled fill
// aborts its writer.
func (f *fill) detach(r *fillReader) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, x := range f.readers {
		if x == r {
			f.readers = append(f.readers[:i], f.readers[i+1:]...)
			break
		}
	}
	f.wakeCopier()
	f.abortUnfollowed()
}

// wait counts a request about to wait on f's decision; done must follow
// once it has attached or given up.
func (f *fill) wait() {
	f.mu.Lock()
	f.pending++
	f.mu.Unlock()
}

func (f *fill) doneWaiting() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pending--
	f.wakeCopier()
	f.abortUnfollowed()
}

// hasWaiters reports whether requests wait on f's decision.
func (f *fill) hasWaiters() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending > 0
}

// wakeCopier tells a copier waiting for the spill window to drain that
// readers moved; under f.mu.
func (f *fill) wakeCopier() {
	if f.consumed != nil {
		close(f.consumed)
		f.consumed = make(chan struct{})
	}
}

// abortUnfollowed aborts the writer of a finished spilled fill that no
// one follows or waits for any more; under f.mu.
func (f *fill) abortUnfollowed() {
	if !f.done || len(f.readers) > 0 || f.pending > 0 {
		return
	}
	if f.spillAt >= 0 && !f.aborted {
		f.aborted = true
		f.w.Abort()
	}
	// Nobody follows the writer any more: a disk writer can close its
	// file now rather than when it is collected.
	if r, ok := f.w.(storage.Releaser); ok && !f.released {
		f.released = true
		r.Release()
	}
}

// fillReader reads bytes [off, end) of a fill as they arrive; end is -1
// for "to the end of the body". off is guarded by f.mu.
type fillReader struct {
	ctx context.Context
	f   *fill
	off int64
	end int64
}

// Ready reports whether bytes past the reader's offset have arrived, or
// the fill ended (proxy.ReadyBody).
func (r *fillReader) Ready() bool {
	f := r.f
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done || f.fillErr != nil || r.off < f.w.Written() || r.off == 0 && f.bodyHere
}

func (r *fillReader) Read(p []byte) (int, error) {
	f := r.f
	for {
		f.mu.Lock()
		off := r.off
		if r.end >= 0 {
			if off >= r.end {
				f.mu.Unlock()
				return 0, io.EOF
			}
			p = p[:min(int64(len(p)), r.end-off)]
		}
		done, ferr, wait := f.done, f.fillErr, f.progress
		if ferr != nil {
			f.mu.Unlock()
			return 0, ferr
		}
		avail := f.w.Written()
		if f.spillAt >= 0 {
			avail = f.spillAt
			if off >= f.spillAt {
				n, err := r.fromWindow(p)
				f.mu.Unlock()
				if n > 0 || err != nil {
					return n, err
				}
				if done {
					return 0, io.EOF
				}
				if err := r.wait(wait); err != nil {
					return 0, err
				}
				continue
			}
		}
		f.mu.Unlock()
		if off < avail {
			n, err := f.w.ReadAt(p[:min(int64(len(p)), avail-off)], off)
			f.mu.Lock()
			r.off += int64(n)
			f.wakeCopier()
			f.mu.Unlock()
			if err == io.EOF { // the bytes are there: an early EOF is a failure, never an end
				err = nil
				if n == 0 {
					err = io.ErrUnexpectedEOF
				}
			}
			return n, err
		}
		if done {
			return 0, io.EOF
		}
		if err := r.wait(wait); err != nil {
			return 0, err
		}
	}
}

// fromWindow copies spilled bytes at r.off; under f.mu.
func (r *fillReader) fromWindow(p []byte) (int, error) {
	f := r.f
	i := r.off - f.windowAt
	if i < 0 {
		return 0, fmt.Errorf("%w: reader fell behind a spilled fill", ErrFillAborted)
	}
	if i >= int64(len(f.window)) {
		return 0, nil
	}
	n := copy(p, f.window[i:])
	r.off += int64(n)
	f.wakeCopier()
	return n, nil
}

func (r *fillReader) wait(progress chan struct{}) error {
	select {
	case <-progress:
		return nil
	case <-r.ctx.Done():
		return r.ctx.Err()
	}
}
