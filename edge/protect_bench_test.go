package edge

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/trace"
)

// benchProtection is a typical rule set (the same as e2e's
// protectBenchRules); the benchmark's request passes every rule.
const benchProtection = `
listeners: [{addr: "127.0.0.1:0"}]
upstreams:
  origin: {servers: [{addr: "127.0.0.1:9"}]}
routes: [{name: all, upstream: origin}]
protection:
  in_flight_per_client: 64
  limits:
    - {name: everyone, key: client_ip, rate: 1000000, per: 1s, burst: 1000000}
  rules:
    - {name: office, ips: [192.0.2.0/24, "2001:db8::/48"], action: allow}
    - {name: blocked-nets, ips: [198.51.100.0/24, 203.0.113.0/24, "2001:db8:dead::/48"], action: deny}
    - {name: scrapers, user_agents: [curl, wget, python-requests, scrapy, ""], action: deny}
    - {name: bots, user_agent_regex: '(?i)(bot|spider|crawl)', action: tarpit, delay: 5s}
    - {name: fake-browsers, anomalies: [browser_no_accept, browser_no_language, browser_http10], action: deny}
    - {name: logins, expr: 'method == "POST" && path.startsWith("/login")', action: challenge}
    - {name: admin, path_prefixes: [/admin/], action: challenge}
    - {name: floods, rate_over: {count: 10000000, interval: 1s}, action: deny}
    - {name: everyone, action: rate_limit, limit: everyone}
`

// BenchmarkProtectionEarlyRequest is the protection layer alone deciding
// for a browser request that every rule lets through: the per-request
// cost the layer adds to any request, cache hits included.
func BenchmarkProtectionEarlyRequest(b *testing.B) {
	inFlightOnly := benchProtection[:strings.Index(benchProtection, "  limits:")]
	for _, bc := range []struct{ name, yaml string }{{"rules", benchProtection}, {"in_flight_only", inFlightOnly}} {
		b.Run(bc.name, func(b *testing.B) { benchEarlyRequest(b, bc.yaml) })
	}
}

func benchEarlyRequest(b *testing.B, yaml string) {
	cfg, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatal(err)
	}
	shared, err := NewShared(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	defer shared.Close()
	app, err := Build(cfg, shared)
	if err != nil {
		b.Fatal(err)
	}
	req := &httphead.Request{ProtoMajor: 1, ProtoMinor: 1}
	req.SetLine([]byte("GET"), []byte("/articles/42?page=2"), []byte("example.com"), []byte("https"))
	for _, f := range [][2]string{{"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"},
		{"Accept", "text/html,application/xhtml+xml"}, {"Accept-Language", "en-GB,en;q=0.9"}, {"Accept-Encoding", "gzip, br"},
		{"Cookie", "session=abc; theme=dark"}} {
		req.Header.AddString(f[0], f[1])
	}
	c := &proxy.Ctx{Context: context.Background(), Request: req, Client: netip.MustParseAddrPort("203.0.114.9:50000"), Trace: &trace.Trace{}}
	b.ReportAllocs()
	for b.Loop() {
		c.Trace.Reset(time.Now())
		if answered, err := app.EarlyRequest(c); answered || err != nil {
			b.Fatalf("answered %v: %v (%s)", answered, err, c.Trace.Find("guard"))
		}
		releaseInFlight(c)
	}
}
