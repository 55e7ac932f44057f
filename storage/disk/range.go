package disk

import (
	"slices"
	"sync"
	"sync/atomic"
)

// rangeBatch is how many objects a Range worker reads before handing them
// over.
const rangeBatch = 64

// listed is an object's key and metadata, read for Range.
type listed struct {
	key  string
	meta []byte
}

// Range calls fn with the key and metadata of every indexed object, one
// call at a time. It reads each object's header from disk (it is meant for
// rebuilding indexes and purges, not for the request path), scanWorkers
// files at a time so that a big store's restart is bounded by the disk's
// throughput rather than its latency, and skips files it cannot read.
func (s *Store) Range(fn func(key string, meta []byte) bool) {
	if s.closed.Load() {
		return
	}
	var (
		next    atomic.Int32 // the next stripe to read
		stop    = make(chan struct{})
		batches = make(chan []listed, scanWorkers)
		wg      sync.WaitGroup
	)
	for range scanWorkers {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < len(s.stripes); i = int(next.Add(1)) - 1 {
				if !s.rangeStripe(&s.stripes[i], batches, stop) {
					return
				}
			}
		})
	}
	go func() { wg.Wait(); close(batches) }()
	defer func() {
		close(stop)
		for range batches { // let the workers finish
		}
	}()
	for batch := range batches {
		for _, o := range batch {
			if !fn(o.key, o.meta) {
				return
			}
		}
	}
}

// rangeStripe reads the headers of the objects indexed in st and sends them
// in batches; it reports false when Range was stopped.
func (s *Store) rangeStripe(st *stripe, out chan<- []listed, stop <-chan struct{}) bool {
	st.RLock()
	hashes := make([]uint64, 0, len(st.idx))
	for h := range st.idx {
		hashes = append(hashes, h)
	}
	st.RUnlock()
	buf := s.getHead()
	defer s.putHead(buf)
	for chunk := range slices.Chunk(hashes, rangeBatch) {
		if s.closed.Load() {
			return false
		}
		batch := make([]listed, 0, len(chunk))
		for _, h := range chunk {
			st.RLock()
			_, ok := st.idx[h]
			var hd header
			var err error
			if ok {
				hd, err = readHeaderFile(s.path(h), buf[:])
			}
			st.RUnlock()
			if ok && err == nil {
				batch = append(batch, listed{string(hd.key), slices.Clone(hd.meta)})
			}
		}
		select {
		case out <- batch:
		case <-stop:
			return false
		}
	}
	return true
}
