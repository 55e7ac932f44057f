package purge

import (
	"testing"
	"time"

	"github.com/outpost-edge/outpost/storage/disk"
)

// During a zero-downtime upgrade the old process keeps storing into the
// disk directory that the new one has opened; once the old one is gone
// the new store adopts those objects. A purge by surrogate key must then
// find them, and one made while the old process still ran must not let
// what it covered come back.
func TestAPurgeFindsObjectsAdoptedFromTheDrainingProcess(t *testing.T) {
	dir := t.TempDir()
	opts := disk.Options{Capacity: 1 << 20}
	old, err := disk.Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	d, err := disk.Open(dir, opts) // the new process, while the old one drains
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	s := Wrap(d, spaceTags)
	p := New(s, deleter{s})

	put(t, old, "kept", "a", "stored by the old process")
	put(t, old, "purged", "b", "stored by the old process before the purge")
	if n := p.Keys([]string{"b"}, false); n != 0 {
		t.Fatalf("the purge of b found %d objects before the adoption", n)
	}
	old.Close()

	deadline := time.Now().Add(10 * time.Second)
	for !stored(s, "kept") {
		if time.Now().After(deadline) {
			t.Fatal("the old process's object was not adopted within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if stored(s, "purged") {
		t.Error("an object purged by key while the old process drained came back with the adoption")
	}
	if n := p.Keys([]string{"a"}, false); n != 1 || stored(s, "kept") {
		t.Errorf("the purge of a touched %d objects (want 1); the adopted object stored after it: %v", n, stored(s, "kept"))
	}
}
