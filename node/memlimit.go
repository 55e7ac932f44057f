package node

import (
	"os"
	"runtime/debug"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/storage/disk"
)

// The Go runtime's memory limit (Options.SetMemoryLimit) keeps the heap
// near what the cache holds: without it the collector lets the heap grow to
// twice the live heap, so a full memory tier took two to four times its
// size. A node sets it at start and on each reload, and every
// memLimitEvery while it is derived, since the disk tier's index grows
// with its object count.
//
// GOGC is left as it is (100 unless the environment sets it): with the
// limit, a full tier's collections are paced by the limit, not by GOGC.
// Filling a 128 MiB tier (TestPeakRSSWithinMemoryTier in cmd/outpost)
// took 6.3-7.0 s of CPU with GOGC=100 and 7.8-8.4 s with GOGC=off, for the
// same peak RSS, so turning it off saves nothing.

// processAllowance is what the derived limit adds, besides an eighth of
// the memory tier (room for the collector to work), for the rest of the
// process: connection buffers, fills in progress, upstream pools, the
// config, the runtime and the eviction tables of a small tier.
const processAllowance = 32 << 20

// memLimitEvery is how often a derived limit follows the disk tier's index.
const memLimitEvery = 10 * time.Second

// envMemoryLimit is the limit GOMEMLIMIT gave the runtime at start, or -1
// when the variable is not set (SetMemoryLimit(-1) only reads it).
var envMemoryLimit = func() int64 {
	if os.Getenv("GOMEMLIMIT") == "" {
		return -1
	}
	return debug.SetMemoryLimit(-1)
}()

// memoryLimit returns the limit for cfg when the disk tier indexes
// diskObjects objects and GOMEMLIMIT gave env (-1: unset), and the setting
// it comes from. memory_limit wins over GOMEMLIMIT, which wins over the
// storage sizes: the config is reviewed and reloadable, and the
// environment is what a container runtime sets for the process.
func memoryLimit(cfg *config.Config, diskObjects, env int64) (int64, string) {
	switch {
	case cfg.MemoryLimit > 0:
		return int64(cfg.MemoryLimit), "memory_limit"
	case env >= 0:
		return env, "GOMEMLIMIT"
	}
	m := int64(cfg.Storage.Memory.Size)
	return m + m/8 + processAllowance + diskObjects*disk.HeapPerObject, "storage sizes"
}

// applyMemoryLimit sets the runtime's limit for cfg if it changed, and
// logs it at info when loud (start, reload), at debug otherwise; under
// n.mu or before the node runs.
func (n *Node) applyMemoryLimit(cfg *config.Config, loud bool) {
	limit, from := memoryLimit(cfg, n.shared.DiskObjects(), envMemoryLimit)
	if limit == n.memLimit {
		return
	}
	n.memLimit = limit
	debug.SetMemoryLimit(limit)
	log := n.Log.Debug
	if loud {
		log = n.Log.Info
	}
	log("memory limit set", "bytes", limit, "from", from)
}

// followMemoryLimit re-derives the limit every memLimitEvery until stop
// is closed.
func (n *Node) followMemoryLimit(stop <-chan struct{}) {
	t := time.NewTicker(memLimitEvery)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			n.mu.Lock()
			n.applyMemoryLimit(n.cfg, false)
			n.mu.Unlock()
		}
	}
}
