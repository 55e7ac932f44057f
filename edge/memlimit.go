package edge

import (
	"github.com/outpost-edge/outpost/purge"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/disk"
	"github.com/outpost-edge/outpost/storage/tiered"
)

// DiskObjects returns how many objects the disk tier indexes (each holds
// an entry of its eviction policy in memory); 0 without a disk tier.
func (s *Shared) DiskObjects() int64 { return diskObjects(s.store) }

func diskObjects(st storage.Store) int64 {
	switch s := st.(type) {
	case *purge.Store:
		return diskObjects(s.Store)
	case *tiered.Store:
		return s.TierStats().Slow.Objects
	case *disk.Store:
		return s.Stats().Objects
	}
	return 0
}
