package tiered

import (
	"fmt"
	"testing"

	"github.com/outpost-edge/outpost/storage"
	"github.com/outpost-edge/outpost/storage/disk"
	"github.com/outpost-edge/outpost/storage/memory"
)

// BenchmarkLookup opens and closes a 1 KiB object found in memory, and one
// found only on disk (promotion stopped, so it stays there).
func BenchmarkLookup(b *testing.B) {
	for _, tier := range []string{"memory", "disk"} {
		b.Run(tier, func(b *testing.B) {
			fast := memory.New(memory.Options{Capacity: 64 << 20})
			slow, err := disk.Open(b.TempDir(), disk.Options{Capacity: 64 << 20})
			if err != nil {
				b.Fatal(err)
			}
			s := New(fast, slow, 64<<10)
			defer s.Close()
			s.once.Do(func() { close(s.quit) })
			into := storage.Store(s)
			if tier == "disk" {
				into = slow
			}
			keys := make([]string, 64)
			for i := range keys {
				keys[i] = fmt.Sprintf("https://example.com/object/%d", i)
				w, _ := into.Create(keys[i], []byte("meta"), 1024)
				w.Write(make([]byte, 1024))
				w.Commit()
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				o, err := s.Lookup(keys[i%len(keys)])
				if err != nil {
					b.Fatal(err)
				}
				o.Close()
			}
		})
	}
}

// BenchmarkStats measures the object count's walk of a memory tier of
// 10,000 objects, all also on disk.
func BenchmarkStats(b *testing.B) {
	fast := memory.New(memory.Options{Capacity: 64 << 20})
	slow, err := disk.Open(b.TempDir(), disk.Options{Capacity: 256 << 20})
	if err != nil {
		b.Fatal(err)
	}
	s := New(fast, slow, 64<<10)
	defer s.Close()
	for i := range 10_000 {
		w, _ := s.Create(fmt.Sprintf("https://example.com/object/%d", i), []byte("meta"), 100)
		w.Write(make([]byte, 100))
		w.Commit()
		w.(storage.Releaser).Release()
	}
	b.ReportAllocs()
	for b.Loop() {
		s.Stats()
	}
}
