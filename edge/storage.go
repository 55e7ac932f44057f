package edge

import (
	"fmt"
	"log/slog"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/disk"
	"github.com/outpost-edge/outpost/storage/tiered"
)

// promoteMax is the largest disk object copied into memory on a hit.
const promoteMax = 1 << 20

func openDisk(c config.DiskStorage, log *slog.Logger) (storage.Store, error) {
	d, err := disk.Open(c.Path, disk.Options{Capacity: int64(c.Size)})
	if err != nil {
		return nil, fmt.Errorf("disk storage %s: %w", c.Path, err)
	}
	log.Info("disk cache opened", "path", c.Path, "objects", d.Stats().Objects)
	return d, nil
}

func newTiered(mem, d storage.Store) storage.Store { return tiered.New(mem, d, promoteMax) }
