package purge

import (
	"context"
	"fmt"
	"io"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/cache"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage/memory"
)

// benchCache is a real cache over an indexed memory store whose origin
// tags /obj/<i> with "big k<i>" and /hot/<i> with "hot".
type benchCache struct {
	s   *Store
	c   *cache.Cache
	p   *Purger
	pol cache.Policy
}

func newBenchCache() *benchCache {
	s := Wrap(memory.New(memory.Options{Capacity: 1 << 30}), cache.EachTag)
	c := cache.New(s, cache.Options{})
	return &benchCache{s: s, c: c, p: New(s, c), pol: cache.Policy{Enabled: true}}
}

func benchFetch(_ context.Context, req *httphead.Request) (*httphead.Response, io.ReadCloser, error) {
	resp := &httphead.Response{Status: 200, ProtoMajor: 1, ProtoMinor: 1, ContentLength: 5}
	resp.Header.AddString("Cache-Control", "max-age=3600")
	tags := "hot"
	if n, ok := strings.CutPrefix(string(req.Path), "/obj/"); ok {
		tags = "big k" + n
	}
	resp.Header.AddString("Surrogate-Key", tags)
	return resp, io.NopCloser(strings.NewReader("hello")), nil
}

// get serves path through the cache and reads the body.
func (bc *benchCache) get(tb testing.TB, req *httphead.Request) {
	rep, err := bc.c.Serve(cache.FuncOrigin(context.Background(), benchFetch), req, &bc.pol, nil)
	if err != nil {
		tb.Fatal(err)
	}
	if rep.Body != nil {
		io.Copy(io.Discard, rep.Body)
	}
	rep.Close()
}

// fill stores /obj/0 ... /obj/n-1 and waits until all are committed.
func (bc *benchCache) fill(tb testing.TB, n int) {
	var req httphead.Request
	for i := range n {
		req.SetLine([]byte("GET"), fmt.Appendf(nil, "/obj/%d", i), []byte("bench"), []byte("http"))
		bc.get(tb, &req)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(bc.s.Keys("big")) < n {
		if time.Now().After(deadline) {
			tb.Fatalf("%d of %d objects indexed", len(bc.s.Keys("big")), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkPurgeOneKeyTagging100k is the time to purge one surrogate key
// that tags 100,000 objects of a memory store.
func BenchmarkPurgeOneKeyTagging100k(b *testing.B) {
	const n = 100000
	for _, soft := range []bool{false, true} {
		b.Run(fmt.Sprint("soft=", soft), func(b *testing.B) {
			bc := newBenchCache()
			b.ReportAllocs()
			var cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				if !soft || len(bc.s.Keys("big")) < n {
					bc.fill(b, n)
				}
				runtime.GC() // the fill's garbage is not the purge's
				b.StartTimer()
				before := cpuTime()
				if got := bc.p.Keys([]string{"big"}, soft); got != n {
					b.Fatalf("purged %d objects, want %d", got, n)
				}
				cpu += cpuTime() - before
			}
			b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "cpu-ms/op")
		})
	}
}

// cpuTime is the CPU time the process has used: on a shared machine it
// says more about the purge's own cost than the wall clock.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkPurgeSingleKeysWhileServingHits purges keys that tag one object
// each while every other CPU serves hits from the same cache; it reports
// the hits/s served meanwhile.
func BenchmarkPurgeSingleKeysWhileServingHits(b *testing.B) {
	const n = 10000
	bc := newBenchCache()
	bc.fill(b, n)
	var stop atomic.Bool
	var hits atomic.Int64
	var wg sync.WaitGroup
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var req httphead.Request
			req.SetLine([]byte("GET"), fmt.Appendf(nil, "/hot/%d", w), []byte("bench"), []byte("http"))
			for !stop.Load() {
				bc.get(b, &req)
				hits.Add(1)
			}
		}()
	}
	keys := make([][]string, n)
	for i := range keys {
		keys[i] = []string{fmt.Sprintf("k%d", i)}
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, before := time.Now(), hits.Load()
	for i := 0; i < b.N; i++ {
		bc.p.Keys(keys[i%n], true)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	stop.Store(true)
	wg.Wait()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "purges/s")
	b.ReportMetric(float64(hits.Load()-before)/elapsed.Seconds(), "hits/s")
}
