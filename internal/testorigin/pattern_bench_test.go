package testorigin

import "testing"

func BenchmarkFillPattern(b *testing.B) {
	buf := make([]byte, 32<<10)
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	var off int64
	for b.Loop() {
		FillPattern(buf, off)
		off += int64(len(buf))
	}
}
