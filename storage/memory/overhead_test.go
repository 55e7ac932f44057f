package memory

import (
	"fmt"
	"runtime"
	"testing"
)

// liveHeap returns the bytes of live heap objects after a full collection.
func liveHeap() int64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return int64(ms.HeapAlloc)
}

// TestChargeCoversHeap fills stores two to three times over with objects of
// a given body size, under keys and metadata of typical length, and checks
// that the heap they really take (measured with runtime.MemStats) is no
// more than what the store charges against its capacity.
func TestChargeCoversHeap(t *testing.T) {
	if testing.Short() {
		t.Skip("fills stores of tens of MiB")
	}
	meta := make([]byte, 250) // a cached response's encoded metadata
	for _, tt := range []struct {
		capacity int64
		bodies   []int // body sizes, used in turn
	}{
		{8 << 20, []int{0}},
		{24 << 20, []int{100}},
		{32 << 20, []int{1000}},
		{32 << 20, []int{10, 700, 3000, 40_000, 150}},
		{64 << 20, []int{5000, 200}},
	} {
		t.Run(fmt.Sprint(tt.capacity>>20, "MiB", tt.bodies), func(t *testing.T) {
			base := liveHeap()
			s := New(Options{Capacity: tt.capacity})
			body := make([]byte, 40_000)
			for i, put := 0, int64(0); put < 3*tt.capacity; i++ {
				n := tt.bodies[i%len(tt.bodies)]
				key := fmt.Sprintf("https://files.example.org/packages/%d/pkg-%d.whl", i%97, i)
				w, err := s.Create(key, meta, int64(n))
				if err != nil {
					t.Fatal(err)
				}
				w.Write(body[:n])
				if err := w.Commit(); err != nil {
					t.Fatal(err)
				}
				put += int64(len(key) + len(meta) + n)
			}
			used := liveHeap() - base
			charged := s.policy.Weight()
			objects := s.Stats().Objects
			t.Logf("%d objects: heap %d B (%d a object), charged %d B (%d a object)",
				objects, used, used/objects, charged, charged/objects)
			// The tolerance covers what the test itself keeps live.
			if used > charged+64<<10 {
				t.Errorf("the objects take %d bytes of heap, %d more than the %d charged", used, used-charged, charged)
			}
			runtime.KeepAlive(s)
		})
	}
}
