package main

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testnet"
)

// smallIDs starts the ids of objects that are all small.
const smallIDs = 1 << 40

// objectSize is the body size of object id: below smallIDs mostly small
// objects, a few up to 8 MiB, about 38 KiB on average (a CDN's mix, scaled
// down); from smallIDs on, 100 bytes to 2 KiB.
func objectSize(id uint64) int {
	r := rand.New(rand.NewPCG(id, 0x5eed))
	switch u := r.Float64(); {
	case u < 0.80 || id >= smallIDs:
		return 100 + r.IntN(2<<10)
	case u < 0.95:
		return 2<<10 + r.IntN(30<<10)
	case u < 0.995:
		return 32<<10 + r.IntN(480<<10)
	default:
		return 1<<20 + r.IntN(7<<20)
	}
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// TestPeakRSSWithinMemoryTier fills the memory tier several times over with
// objects of mixed sizes from a loopback origin, from eight clients, and
// checks the process's peak resident memory against the budget of issue 10:
// 1.25 times storage.memory.size plus 64 MiB.
func TestPeakRSSWithinMemoryTier(t *testing.T) {
	if testing.Short() {
		t.Skip("moves several times the memory tier through the binary")
	}
	sizes := []int64{16 << 20, 128 << 20}
	if s, err := strconv.ParseInt(os.Getenv("OUTPOST_TEST_TIER_MIB"), 10, 64); err == nil {
		sizes = []int64{s << 20} // a one-off run at another size
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size>>20, "MiB"), func(t *testing.T) { fillTier(t, size) })
	}
}

func fillTier(t *testing.T, size int64) {
	body := make([]byte, 8<<20)
	for i := range body {
		body[i] = byte(i % 251)
	}
	var originBytes atomic.Int64
	origin := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := strconv.ParseUint(strings.TrimPrefix(r.URL.Path, "/o/"), 10, 64)
		n := objectSize(id)
		w.Header().Set("Cache-Control", "public, max-age=3600")
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(body[:n])
		originBytes.Add(int64(n))
	})}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go origin.Serve(ol)
	defer origin.Close()
	addr := testnet.FreeAddr(t)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
	extra := fmt.Sprintf("storage: {memory: {size: %d}}", size)
	p := startProc(t, addr, "run", "-c", writeConfig(t, addr, ol.Addr().String(), extra))

	// First, ids drawn uniformly from a footprint four times the tier,
	// until the origin has sent three times the tier: most requests miss
	// and fill, and the tier evicts throughout. Then small objects, each
	// requested once, enough to fill the tier with them alone (where the
	// cost of each object weighs most), up to 120,000.
	const meanSize = 38 << 10
	ids := uint64(4 * size / meanSize)
	deadline := time.Now().Add(45*time.Second + time.Duration(size>>25)*time.Second)
	var requests, next atomic.Int64
	get := func(id uint64) bool {
		resp, err := client.Get(fmt.Sprintf("http://%s/o/%d", addr, id))
		if err != nil {
			t.Error(err)
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		requests.Add(1)
		return time.Now().Before(deadline)
	}
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for originBytes.Load() < 3*size && get(r.Uint64N(ids)) {
			}
			for n := next.Add(1); n <= min(size>>9, 120_000) && get(smallIDs+uint64(n)); n = next.Add(1) {
			}
		})
	}
	wg.Wait()
	pid := p.cmd.Process.Pid
	rss, bound := peakRSS(t, pid), size+size/4+64<<20
	t.Logf("storage.memory.size %d MiB: %d requests, %d MiB from the origin; peak RSS %d MiB (bound %d MiB), CPU %v",
		size>>20, requests.Load(), originBytes.Load()>>20, rss>>20, bound>>20, cpuTime(t, pid))
	if time.Now().After(deadline) {
		t.Fatalf("the deadline passed before the tier was filled")
	}
	if rss > bound {
		t.Fatalf("peak RSS %d MiB over the bound of %d MiB", rss>>20, bound>>20)
	}
}
