package config

import (
	"os"
	"testing"
)

// BenchmarkParseFullConfig measures a reload's decode, provision and
// validation of testdata/full.yaml (4 routes, 2 upstreams, every key set).
func BenchmarkParseFullConfig(b *testing.B) {
	data, err := os.ReadFile("testdata/full.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse("testdata/full.yaml", data); err != nil {
			b.Fatal(err)
		}
	}
}
