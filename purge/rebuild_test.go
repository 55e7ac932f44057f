package purge

import (
	"slices"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/memory"
)

// slowRange is a store whose Range (a disk store of millions reading every
// header) does not start until start is closed.
type slowRange struct {
	storage.Store
	start chan struct{}
}

func (s slowRange) Range(fn func(key string, meta []byte) bool) {
	<-s.start
	s.Store.Range(fn)
}

// Wrap does not wait for the store's Range: the store serves at once, and
// a purge by surrogate key made meanwhile waits for the rebuilt index, so
// it finds what the store held as well as what was committed since; a
// commit made meanwhile keeps its newer surrogate keys.
func TestWrapServesWhileTheIndexIsRebuilt(t *testing.T) {
	mem := memory.New(memory.Options{Capacity: 1 << 20})
	put(t, mem, "old", "a", "stored before the restart")
	put(t, mem, "retagged", "a", "stored before the restart")
	slow := slowRange{mem, make(chan struct{})}
	wrapped := make(chan *Store)
	go func() { wrapped <- Wrap(slow, spaceTags) }()
	var s *Store
	select {
	case s = <-wrapped:
	case <-time.After(10 * time.Second):
		t.Fatal("Wrap waited for the store's Range")
	}
	if !stored(s, "old") {
		t.Fatal("a lookup during the rebuild missed")
	}
	put(t, s, "new", "a", "stored during the rebuild")
	put(t, s, "retagged", "b", "stored during the rebuild with new keys")

	purged := make(chan int)
	go func() { purged <- New(s, deleter{s}).Keys([]string{"a"}, false) }()
	select {
	case n := <-purged:
		t.Fatalf("the purge by surrogate key returned %d before the index was rebuilt", n)
	case <-time.After(50 * time.Millisecond):
	}
	close(slow.start)
	if n := <-purged; n != 2 || stored(s, "old") || stored(s, "new") {
		t.Fatalf("purge of a: %d objects (want 2), old stored %v, new stored %v", n, stored(s, "old"), stored(s, "new"))
	}
	if got := s.Keys("b"); !slices.Equal(got, []string{"retagged"}) || !stored(s, "retagged") {
		t.Fatalf("Keys(b) = %v, retagged stored %v: the rebuild overwrote newer keys", got, stored(s, "retagged"))
	}
}
