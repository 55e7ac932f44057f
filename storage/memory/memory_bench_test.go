package memory

import (
	"fmt"
	"sync/atomic"
	"testing"
)

// BenchmarkLookupHit looks up 1,000 committed 4 KiB objects from parallel
// goroutines and reads each body through storage.Bytes.
func BenchmarkLookupHit(b *testing.B) {
	const objects = 1000
	s := New(Options{Capacity: 64 << 20})
	keys := make([]string, objects)
	for i := range keys {
		keys[i] = fmt.Sprintf("https://files.example.org/packages/%d/pkg-%d.whl", i%97, i)
		commit(b, s, keys[i], make([]byte, 4096))
	}
	var seed atomic.Uint64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := seed.Add(7919)
		for pb.Next() {
			o, err := s.Lookup(keys[i%objects])
			if err != nil {
				b.Fatal(err)
			}
			if o.Size() != 4096 {
				b.Fatal("wrong size")
			}
			o.Close()
			i++
		}
	})
}

// BenchmarkCommit fills and commits 4 KiB objects into a full store, so each
// commit also evicts.
func BenchmarkCommit(b *testing.B) {
	s := New(Options{Capacity: 4 << 20})
	body := make([]byte, 4096)
	var n atomic.Int64
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			commit(b, s, fmt.Sprint(n.Add(1)), body)
		}
	})
}
