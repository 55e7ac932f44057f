package tiered_test

import (
	"testing"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/memory"
	"github.com/outpost-edge/outpost/storage/storagetest"
	"github.com/outpost-edge/outpost/storage/tiered"
)

func TestTieredStoreConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		return tiered.New(memory.New(memory.Options{Capacity: 1 << 20}), memory.New(memory.Options{Capacity: 4 << 20}), 64<<10)
	})
}

func TestSlowTierHitIsPromoted(t *testing.T) {
	fast := memory.New(memory.Options{Capacity: 1 << 20})
	slow := memory.New(memory.Options{Capacity: 1 << 20})
	w, _ := slow.Create("k", []byte("m"), 3)
	w.Write([]byte("abc"))
	w.Commit()
	s := tiered.New(fast, slow, 1024)
	o, err := s.Lookup("k")
	if err != nil {
		t.Fatal(err)
	}
	o.Close()
	if _, err := fast.Lookup("k"); err != nil {
		t.Fatalf("not promoted: %v", err)
	}
}
