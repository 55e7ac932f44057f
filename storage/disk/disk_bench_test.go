package disk

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var benchSizes = []struct {
	name string
	size int
}{
	{"1KiB", 1 << 10},
	{"1MiB", 1 << 20},
}

// BenchmarkLookupRead opens a stored object, reads its body whole and
// closes it: the store's share of a cache hit.
func BenchmarkLookupRead(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s := openStore(b, b.TempDir(), Options{Capacity: 1 << 30})
			keys := make([]string, 64)
			for i := range keys {
				keys[i] = fmt.Sprintf("https://example.com/object/%d", i)
				mustPut(b, s, keys[i], []byte(strings.Repeat("h", 300)), body(keys[i], bs.size))
			}
			p := make([]byte, bs.size)
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				o, err := s.Lookup(keys[i%len(keys)])
				if err != nil {
					b.Fatal(err)
				}
				if n, err := o.ReadAt(p, 0); n != bs.size || err != nil {
					b.Fatalf("ReadAt: n=%d err=%v", n, err)
				}
				o.Close()
			}
		})
	}
}

func BenchmarkLookupReadParallel(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{Capacity: 1 << 30})
	keys := make([]string, 64)
	for i := range keys {
		keys[i] = fmt.Sprintf("https://example.com/object/%d", i)
		mustPut(b, s, keys[i], []byte(strings.Repeat("h", 300)), body(keys[i], 1<<10))
	}
	b.SetBytes(1 << 10)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		p := make([]byte, 1<<10)
		for i := 0; pb.Next(); i++ {
			o, err := s.Lookup(keys[i%len(keys)])
			if err != nil {
				b.Error(err)
				return
			}
			o.ReadAt(p, 0)
			o.Close()
		}
	})
}

func BenchmarkLookupMiss(b *testing.B) {
	s := openStore(b, b.TempDir(), Options{Capacity: 1 << 30})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Lookup("https://example.com/not/stored"); err == nil {
			b.Fatal("hit")
		}
	}
}

// BenchmarkWrite measures fills: Create, writes of 64 KiB, Commit, over a
// rotating set of keys so that commits replace older objects.
func BenchmarkWrite(b *testing.B) {
	for _, bs := range benchSizes {
		b.Run(bs.name, func(b *testing.B) {
			s := openStore(b, b.TempDir(), Options{Capacity: 1 << 30})
			data := body("write", bs.size)
			keys := make([]string, 256)
			for i := range keys {
				keys[i] = fmt.Sprintf("https://example.com/object/%d", i)
			}
			meta := []byte(strings.Repeat("h", 300))
			b.SetBytes(int64(bs.size))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if err := put(s, keys[i%len(keys)], meta, data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkSipHash(b *testing.B) {
	key := "https://example.com/some/path/to/an/object.js?v=12345"
	b.SetBytes(int64(len(key)))
	b.ReportAllocs()
	for b.Loop() {
		sipHash(1, 2, key)
	}
}

// BenchmarkOpen measures a restart from the index (reading no object
// file) and from the scan (every object's header read and checked), which
// Open falls back to without an index.
func BenchmarkOpen(b *testing.B) {
	const objects = 10_000
	dir := b.TempDir()
	s, err := Open(dir, Options{Capacity: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	for i := range objects {
		key := fmt.Sprintf("https://example.com/object/%d", i)
		mustPut(b, s, key, []byte(strings.Repeat("h", 300)), body(key, 2000))
	}
	s.Close()
	for _, scan := range []bool{false, true} {
		b.Run(fmt.Sprintf("scan=%v", scan), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if scan {
					b.StopTimer()
					os.Remove(filepath.Join(dir, "index"))
					b.StartTimer()
				}
				s, err := Open(dir, Options{Capacity: 1 << 30})
				if err != nil {
					b.Fatal(err)
				}
				if n := s.Stats().Objects; n != objects {
					b.Fatalf("reopened with %d objects, want %d", n, objects)
				}
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*objects), "ns/object")
		})
	}
}

// BenchmarkRange measures the read of every object's key and metadata with
// which package purge rebuilds its surrogate-key index at start.
func BenchmarkRange(b *testing.B) {
	const objects = 10_000
	s := openStore(b, b.TempDir(), Options{Capacity: 1 << 30})
	for i := range objects {
		key := fmt.Sprintf("https://example.com/object/%d", i)
		mustPut(b, s, key, []byte(strings.Repeat("h", 300)), body(key, 2000))
	}
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		s.Range(func(string, []byte) bool { n++; return true })
		if n != objects {
			b.Fatalf("Range listed %d objects, want %d", n, objects)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*objects), "ns/object")
}
