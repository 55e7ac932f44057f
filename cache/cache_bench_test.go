package cache

import (
	"context"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage/memory"
	"github.com/outpost-edge/outpost/trace"
)

// hitSetup stores one 1 KiB object with realistic headers and returns a
// request for it.
func hitSetup(tb testing.TB, extra ...string) (*Cache, *Policy, *origin, func() *Reply) {
	return hitSetupSize(tb, 1024, extra...)
}

// hitSetupSize is hitSetup for an object of size bytes.
func hitSetupSize(tb testing.TB, size int, extra ...string) (*Cache, *Policy, *origin, func() *Reply) {
	store := memory.New(memory.Options{Capacity: 64 << 20})
	c := New(store, Options{})
	pol := &Policy{Enabled: true}
	o := newOrigin(func(*httphead.Request, int) answer {
		a := answer{headers: []string{
			"Content-Type: application/octet-stream", "Cache-Control: public, max-age=31536000, immutable",
			"ETag: \"0123456789abcdef\"", "Last-Modified: Mon, 02 Jan 2006 15:04:05 GMT",
			"Surrogate-Key: pkg-a pkg-b", "Server: origin",
		}, body: strings.Repeat("x", size)}
		a.headers = append(a.headers, extra...)
		return a
	})
	req := request("GET", "/packages/aa/bb/demo-1.0.tar.gz", "Accept: */*", "User-Agent: bench", "Accept-Encoding: gzip, br")
	tr := &trace.Trace{}
	origin := FuncOrigin(context.Background(), o.fetch) // made once: it allocates
	serve := func() *Reply {
		tr.Reset(c.now())
		rep, err := c.Serve(origin, req, pol, tr)
		if err != nil {
			tb.Fatal(err)
		}
		return rep
	}
	r := readReply(serve())
	if r.body != strings.Repeat("x", size) {
		tb.Fatalf("fill: %q", r.get("Cache-Status"))
	}
	deadline := 0
	for {
		rep := serve()
		st := rep.Status
		rep.Close()
		if st == StatusHit || deadline > 1000 {
			break
		}
		deadline++
	}
	return c, pol, o, serve
}

func TestServeHitDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	_, _, _, serve := hitSetup(t)
	n := testing.AllocsPerRun(1000, func() {
		rep := serve()
		if rep.Status != StatusHit || len(rep.BodyBytes) != 1024 {
			t.Fatalf("not a hit: %v", rep.Status)
		}
		rep.Close()
	})
	if n != 0 {
		t.Errorf("a hit allocates %v times", n)
	}
}

func BenchmarkServeHit(b *testing.B) {
	_, _, _, serve := hitSetup(b)
	b.ReportAllocs()
	for b.Loop() {
		serve().Close()
	}
}

// BenchmarkServeHit1MiB shows that a hit costs the same whatever the size:
// the stored bytes are handed over, not copied.
func BenchmarkServeHit1MiB(b *testing.B) {
	_, _, _, serve := hitSetupSize(b, 1<<20)
	b.ReportAllocs()
	for b.Loop() {
		serve().Close()
	}
}

// BenchmarkServeHitVary is a hit on an object that varies on
// Accept-Encoding: two lookups (the marker, then the variant).
func BenchmarkServeHitVary(b *testing.B) {
	_, _, _, serve := hitSetup(b, "Vary: Accept-Encoding")
	b.ReportAllocs()
	for b.Loop() {
		rep := serve()
		if rep.Status != StatusHit {
			b.Fatal(rep.Status)
		}
		rep.Close()
	}
}

func BenchmarkServeHitParallel(b *testing.B) {
	c, pol, o, _ := hitSetup(b)
	origin := FuncOrigin(context.Background(), o.fetch)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		req := request("GET", "/packages/aa/bb/demo-1.0.tar.gz", "Accept: */*", "User-Agent: bench")
		tr := &trace.Trace{}
		for pb.Next() {
			tr.Reset(c.now())
			rep, err := c.Serve(origin, req, pol, tr)
			if err != nil {
				b.Fatal(err)
			}
			rep.Close()
		}
	})
}

// BenchmarkServePass is a request that goes to the origin and is not
// stored: the cache's own cost on top of the origin's (the test origin
// allocates its response and records a copy of the request).
func BenchmarkServePass(b *testing.B) {
	benches := []struct {
		name    string
		cc      string
		headers []string
	}{
		{"hit-for-pass", "no-store", nil},
		{"request no-store", "max-age=60", []string{"Cache-Control: no-store"}},
		{"authorized", "max-age=60", []string{"Authorization: Bearer x"}},
	}
	for _, bb := range benches {
		b.Run(bb.name, func(b *testing.B) {
			c := New(memory.New(memory.Options{Capacity: 64 << 20}), Options{})
			pol := &Policy{Enabled: true}
			o := fixed(answer{headers: []string{"Cache-Control: " + bb.cc, "Content-Type: text/plain"}, body: strings.Repeat("p", 1024)})
			origin := FuncOrigin(context.Background(), o.fetch)
			req := request("GET", "/pass", append([]string{"Accept: */*", "User-Agent: bench"}, bb.headers...)...)
			buf := make([]byte, 4096)
			serve := func() {
				rep, err := c.Serve(origin, req, pol, nil)
				if err != nil {
					b.Fatal(err)
				}
				for rep.Body != nil {
					if _, err := rep.Body.Read(buf); err != nil {
						break
					}
				}
				rep.Close()
			}
			serve()
			b.ReportAllocs()
			for b.Loop() {
				serve()
			}
		})
	}
}
