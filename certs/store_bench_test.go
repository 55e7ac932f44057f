package certs

import (
	"crypto/tls"
	"testing"
)

func BenchmarkGetCertificate(b *testing.B) {
	ca := newCA(b)
	dir := b.TempDir()
	s, err := New(b.Context(), Config{PollInterval: -1, Pairs: []Pair{
		ca.issue(b, dir, "default", 1, "default.test"),
		ca.issue(b, dir, "api", 2, "api.example.org"),
		ca.issue(b, dir, "wild", 3, "*.example.org"),
	}})
	if err != nil {
		b.Fatal(err)
	}
	for _, name := range []string{"api.example.org", "www.example.org", "unknown.test"} {
		b.Run(name, func(b *testing.B) {
			hello := &tls.ClientHelloInfo{ServerName: name}
			b.ReportAllocs()
			for b.Loop() {
				s.GetCertificate(hello)
			}
		})
	}
}
