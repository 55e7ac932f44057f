package edge

import (
	"fmt"
	"log/slog"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/purge"
	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/disk"
	"github.com/outpost-edge/outpost/storage/tiered"
)

// promoteMax is the largest disk object copied into memory once it has
// been hit twice.
const promoteMax = 1 << 20

func openDisk(c config.DiskStorage, log *slog.Logger) (storage.Store, error) {
	d, err := disk.Open(c.Path, disk.Options{Capacity: int64(c.Size), Sync: c.Sync, Verify: c.Verify})
	if err != nil {
		return nil, fmt.Errorf("disk storage %s: %w", c.Path, err)
	}
	log.Info("disk cache opened", "path", c.Path, "objects", d.Stats().Objects, "sync", c.Sync, "verify", c.Verify)
	return d, nil
}

func newTiered(mem, d storage.Store) storage.Store { return tiered.New(mem, d, promoteMax) }

// storageMetrics reports each storage tier's occupancy, labelled
// tier="memory" or tier="disk", and the promotions from disk to memory
// when there are both. It looks through the purge index's wrapper.
func storageMetrics(st storage.Store) []metrics.Value {
	switch s := st.(type) {
	case nil:
		return nil
	case *purge.Store:
		return storageMetrics(s.Store)
	case *tiered.Store:
		ts := s.TierStats()
		vs := append(tierMetrics(nil, "memory", ts.Fast), tierMetrics(nil, "disk", ts.Slow)...)
		return append(vs,
			metrics.Value{Name: "outpost_storage_promotions_total", Help: "Disk objects copied into memory after a second hit.", Counter: true, V: float64(ts.Promoted)},
			metrics.Value{Name: "outpost_storage_promotions_dropped_total", Help: "Promotions given up because the queue was full.", Counter: true, V: float64(ts.Dropped)})
	case *disk.Store:
		return tierMetrics(nil, "disk", s.Stats())
	default:
		return tierMetrics(nil, "memory", st.Stats())
	}
}

func tierMetrics(vs []metrics.Value, tier string, st storage.Stats) []metrics.Value {
	label := []string{"tier", tier}
	return append(vs,
		metrics.Value{Name: "outpost_storage_bytes", Help: "Bytes stored in the tier (bodies and metadata; on disk, whole blocks and a share of directory and index blocks).", Labels: label, V: float64(st.Bytes)},
		metrics.Value{Name: "outpost_storage_objects", Help: "Objects stored in the tier.", Labels: label, V: float64(st.Objects)},
		metrics.Value{Name: "outpost_storage_capacity_bytes", Help: "Bytes the tier may hold.", Labels: label, V: float64(st.Capacity)},
		metrics.Value{Name: "outpost_storage_evictions_total", Help: "Objects evicted from the tier to make room.", Counter: true, Labels: label, V: float64(st.Evictions)})
}
