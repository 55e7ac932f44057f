package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/evict/sim"
	"github.com/outpost-edge/outpost/evict/tracegen"
	"github.com/outpost-edge/outpost/internal/testnet"
	"github.com/outpost-edge/outpost/storage/memory"
)

// Replay sizing: the downloads trace of evict/tracegen, 100,000 requests
// over a catalogue of 10,000 objects, sizes divided by 4 and clamped to
// [1 KiB, 1 MiB] (the memory tier keeps objects up to an eighth of its
// size), in front of an 8 MiB memory tier: about 5% of the footprint.
const (
	replayRequests = 100_000
	replayObjects  = 10_000
	replayMemory   = 8 << 20
	replayMaxSize  = replayMemory / 8
	// replayPerObject is what LRU is charged per object on top of its body,
	// as the memory tier charges its key, stored head and bookkeeping: a
	// lower estimate, so that LRU is not handicapped.
	replayPerObject = memory.ObjectOverhead + 256
)

// replayTrace is the trace the binary and the simulation replay.
func replayTrace() []tracegen.Request {
	c := tracegen.Downloads(replayRequests, 7)
	c.Objects = replayObjects
	trace := tracegen.Generate(c)
	for i := range trace {
		trace[i].Size = max(1<<10, min(trace[i].Size/4, replayMaxSize))
	}
	return trace
}

// TestReplayedTraceHitsAtLeastAsOftenAsLRU replays a generated CDN trace,
// in order, through the binary with a memory tier of about 5% of the
// trace's footprint, and checks that it hits at least as often as the
// LRU simulation of the same trace at the same byte budget (the origin
// counts its fetches: every other request was a hit), and that the
// process's peak RSS stays within 1.25 x storage.memory.size + 64 MiB.
func TestReplayedTraceHitsAtLeastAsOftenAsLRU(t *testing.T) {
	trace := replayTrace()
	var fetches atomic.Int64
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// /o/<key>/<size>: the origin needs no state.
		size, err := strconv.ParseInt(r.URL.Path[strings.LastIndexByte(r.URL.Path, '/')+1:], 10, 64)
		if err != nil {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		fetches.Add(1)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		io.CopyN(w, &pattern{}, size)
	})}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go origin.Serve(ol)
	defer origin.Close()

	addr := testnet.FreeAddr(t)
	storage := fmt.Sprintf("storage:\n  memory: {size: %d}", replayMemory)
	p := startProc(t, addr, "run", "-c", writeConfig(t, addr, ol.Addr().String(), storage))

	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(45 * time.Second)
	start := time.Now()
	for i, q := range trace {
		if time.Now().After(deadline) {
			t.Fatalf("replay too slow: %d of %d requests in %v", i, len(trace), time.Since(start))
		}
		resp, err := client.Get(fmt.Sprintf("http://%s/o/%x/%d", addr, q.Key, q.Size))
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || n != q.Size {
			t.Fatalf("request %d: status %d, %d of %d bytes\n%s", i, resp.StatusCode, n, q.Size, p.out.String())
		}
	}
	elapsed := time.Since(start)

	got := 1 - float64(fetches.Load())/float64(len(trace))
	charged := make([]tracegen.Request, len(trace))
	for i, q := range trace {
		charged[i] = tracegen.Request{Key: q.Key, Size: q.Size + replayPerObject}
	}
	lru := sim.Run(sim.NewLRU(replayMemory), charged).RequestRatio()
	policy := sim.Run(sim.NewPolicy(replayMemory), charged).RequestRatio()
	objects, footprint := tracegen.Footprint(trace)
	rss := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("%d requests in %v, %d objects, footprint %d MiB, memory tier %d MiB (%.1f%%)",
		len(trace), elapsed.Round(time.Millisecond), objects, footprint>>20, replayMemory>>20, 100*float64(replayMemory)/float64(footprint))
	t.Logf("request hit ratio: outpost %.3f, LRU simulated %.3f, evict.Policy simulated %.3f; peak RSS %d MiB",
		got, lru, policy, rss>>20)
	if got < lru {
		t.Fatalf("outpost hit ratio %.3f below LRU's %.3f on the same trace and budget", got, lru)
	}
	if bound := int64(replayMemory+replayMemory/4) + 64<<20; rss > bound {
		t.Fatalf("peak RSS %d MiB over 1.25 x the memory tier + 64 MiB (%d MiB)", rss>>20, bound>>20)
	}
}
