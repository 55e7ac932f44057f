package disk

import (
	"testing"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/storagetest"
)

func TestStoreConformance(t *testing.T) {
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"default", Options{Capacity: 1 << 20}},
		{"synced", Options{Capacity: 1 << 20, Sync: true}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storagetest.Run(t, func(t *testing.T) storage.Store {
				s, err := Open(t.TempDir(), tt.opts)
				if err != nil {
					t.Fatal(err)
				}
				return s
			})
		})
	}
}
