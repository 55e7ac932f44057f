package disk

import (
	"testing"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/storagetest"
)

func TestStoreConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		s, err := Open(t.TempDir(), Options{Capacity: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
