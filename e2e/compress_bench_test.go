package e2e

import (
	"io"
	"net/http"
	"strings"
	"syscall"
	"testing"

	"github.com/outpost-edge/outpost/internal/demo"
)

// packageIndexPages are pages of the package-index example's origin
// (internal/demo), with the Accept that selects each form.
var packageIndexPages = []struct{ name, path, accept string }{
	{"simple-index-html", "/simple/", "text/html"},
	{"project-html", "/simple/numpy/", "text/html"},
	{"project-json", "/simple/numpy/", "application/vnd.pypi.simple.v1+json"},
	{"pypi-json", "/pypi/numpy/json", "*/*"},
}

// BenchmarkPackageIndexHit is a cache hit of a package-index page over
// HTTP/1.1 keep-alive for each coding the client asks for: the coded
// variants are stored, so a compressed hit should cost what an identity
// hit does. It reports the body bytes each coding sends (B/resp).
//
//	cd e2e && go test -run X -bench PackageIndexHit -benchtime 20000x -benchmem .
func BenchmarkPackageIndexHit(b *testing.B) {
	origin := serveBench(b, demo.Handler())
	e := startEdge(&testing.T{}, `
upstreams:
  index:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: pages
    upstream: index
    compress: {min_size: 0}  # the demo's pages are small; the default would leave all but one
`, "{{ORIGIN}}", origin)
	defer e.Shutdown(b.Context())
	addr := strings.TrimPrefix(e.URL, "http://")
	for _, pg := range packageIndexPages {
		for _, ae := range []string{"identity", "br", "zstd", "gzip"} {
			b.Run(pg.name+"/"+ae, func(b *testing.B) {
				c := newRawClient(b, addr, pg.path)
				defer c.conn.Close()
				c.req = []byte("GET " + pg.path + " HTTP/1.1\r\nHost: bench\r\nUser-Agent: bench\r\nAccept: " + pg.accept +
					"\r\nAccept-Encoding: " + ae + "\r\n\r\n")
				// Fill the cache with this variant (a fill of a coded body
				// streams without Content-Length, which rawClient needs).
				req, _ := http.NewRequest("GET", e.URL+pg.path, nil)
				req.Host = "bench" // as rawClient sends: the same cache key
				req.Header.Set("Accept", pg.accept)
				req.Header.Set("Accept-Encoding", ae)
				resp, err := testClient.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if st := c.do(b); st != 200 {
					b.Fatalf("status %d", st)
				}
				b.ReportAllocs()
				b.ResetTimer()
				cpu := processCPU()
				for i := 0; i < b.N; i++ {
					if st := c.do(b); st != 200 {
						b.Fatalf("status %d", st)
					}
				}
				b.ReportMetric(float64(processCPU()-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(c.last), "B/resp")
			})
		}
	}
}

// processCPU returns the CPU time (user and system) the process has used,
// in nanoseconds: a figure the other helpers sharing the machine move less
// than wall time. Client and server are both in it.
func processCPU() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// serveBench runs h on a loopback listener for a benchmark.
func serveBench(b *testing.B, h http.Handler) string {
	l := listen(&testing.T{})
	s := &http.Server{Handler: h}
	go s.Serve(l)
	b.Cleanup(func() { s.Close(); l.Close() })
	return l.Addr().String()
}
