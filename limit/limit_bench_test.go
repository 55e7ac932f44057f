package limit

import (
	"encoding/binary"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

const distinctKeys = 10_000_000

// heapInUse returns the live heap after a collection.
func heapInUse() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// BenchmarkAllowTenMillionKeys cycles through 10 million distinct 16-byte
// keys and reports the heap the limiter holds, which depends on its table
// size only.
//
// Before timing, every key is seen once over ten simulated seconds while
// one hot key asks 10,000 times a second against its limit of 100: the
// hot-allowed metric is how many of its requests got through divided by
// what the limit allows (1.0 means the churn of cold keys never made the
// table forget the hot one).
func BenchmarkAllowTenMillionKeys(b *testing.B) {
	for _, slots := range []int{1 << 20, 1 << 23} {
		b.Run(fmt.Sprintf("slots=%d", slots), func(b *testing.B) {
			before := heapInUse()
			lim := mustNew(b, Limit{Rate: 100}, slots)
			var key [16]byte
			now := t0
			hot, hotAllowed := []byte("hot"), 0
			for i := range distinctKeys {
				now = now.Add(time.Microsecond)
				binary.LittleEndian.PutUint64(key[:], uint64(i))
				lim.Allow(key[:], now)
				if i%100 == 0 && lim.Allow(hot, now).Allowed {
					hotAllowed++
				}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				binary.LittleEndian.PutUint64(key[:], uint64(i%distinctKeys))
				lim.Allow(key[:], now)
			}
			b.StopTimer()
			b.ReportMetric(float64(heapInUse()-before)/(1<<20), "heap-MiB")
			b.ReportMetric(float64(hotAllowed)/(100*10+100), "hot-allowed")
			runtime.KeepAlive(lim)
		})
	}
}

func BenchmarkAllowParallel(b *testing.B) {
	lim := mustNew(b, Limit{Rate: 100}, 0)
	var next atomic.Uint64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var key [16]byte
		base := next.Add(1) << 40
		now := time.Now()
		for i := uint64(0); pb.Next(); i++ {
			binary.LittleEndian.PutUint64(key[:], base+i%100_000)
			lim.Allow(key[:], now)
		}
	})
}

func BenchmarkInFlightAcquireRelease(b *testing.B) {
	f := &InFlight{PerKey: 10, Total: 1 << 20}
	key := []byte("203.0.113.7")
	b.ReportAllocs()
	for b.Loop() {
		tk, _ := f.Acquire(key)
		tk.Release()
	}
}

// BenchmarkRateObserveTenMillionKeys is BenchmarkAllowTenMillionKeys for the
// count-min sketch estimator.
func BenchmarkRateObserveTenMillionKeys(b *testing.B) {
	before := heapInUse()
	r := NewRate(time.Second, 1<<16)
	var key [16]byte
	now := t0
	for i := range distinctKeys {
		binary.LittleEndian.PutUint64(key[:], uint64(i))
		r.Observe(key[:], 1, now)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		binary.LittleEndian.PutUint64(key[:], uint64(i%distinctKeys))
		r.Observe(key[:], 1, now)
	}
	b.StopTimer()
	b.ReportMetric(float64(heapInUse()-before)/(1<<20), "heap-MiB")
	runtime.KeepAlive(r)
}
