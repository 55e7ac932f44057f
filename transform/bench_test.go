package transform

import (
	"bytes"
	"fmt"
	"io"
	"testing"
)

// BenchmarkEncode is what compressing one response costs, per coding: paid
// once per object and coding behind the cache (the fill), on every request
// without it.
//
//	go test ./transform -run X -bench Encode -benchmem
func BenchmarkEncode(b *testing.B) {
	var page bytes.Buffer
	for i := 0; page.Len() < 64<<10; i++ {
		fmt.Fprintf(&page, `{"filename":"numpy-1.%d.0.tar.gz","url":"https://files.example/packages/ab/cd/numpy-1.%d.0.tar.gz","digests":{"sha256":"%064x"}},`, i, i, i*7919)
	}
	for _, size := range []int{1218, 64 << 10} {
		body := page.Bytes()[:size]
		for _, coding := range []string{"br", "zstd", "gzip"} {
			b.Run(fmt.Sprintf("%s/%dB", coding, size), func(b *testing.B) {
				b.SetBytes(int64(size))
				b.ReportAllocs()
				out := 0
				for i := 0; i < b.N; i++ {
					r := newEncodeReader(io.NopCloser(bytes.NewReader(body)), coding)
					n, _ := io.Copy(io.Discard, r)
					r.Close()
					out = int(n)
				}
				b.ReportMetric(float64(out), "B/out")
			})
		}
	}
}
