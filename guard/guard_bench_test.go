package guard

import (
	"net/netip"
	"testing"
)

// BenchmarkEvaluate runs the typical rule set (9 rules: CIDR allow and deny
// lists, user agent substrings and pattern, JA4 list, anomalies, path
// prefixes, a Go hook, a per-client rate) over a browser request that
// matches none of them, the common and most expensive case.
func BenchmarkEvaluate(b *testing.B) {
	rs := typicalRules(b)
	req := newRequest("GET", 1, 1, browser...)
	ip := netip.MustParseAddr("192.0.2.1")
	var a Attrs
	b.ReportAllocs()
	for b.Loop() {
		a.Reset(ip, "t13d1516h2_8daaf6152771_e5627efa2ab1", req)
		if v := rs.Evaluate(&a); v.Action != ActionNone {
			b.Fatal(v)
		}
	}
}

func BenchmarkEvaluateLargeDenyList(b *testing.B) {
	prefixes := make([]netip.Prefix, 0, 10000)
	for i := range 10000 {
		prefixes = append(prefixes, netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(i >> 8), byte(i), 0, 0}), 24))
	}
	rs, err := NewRules([]Rule{{Name: "deny", Action: ActionDeny, IPs: prefixes}})
	if err != nil {
		b.Fatal(err)
	}
	req := newRequest("GET", 1, 1, browser...)
	ip := netip.MustParseAddr("192.0.2.1")
	var a Attrs
	b.ReportAllocs()
	for b.Loop() {
		a.Reset(ip, "", req)
		rs.Evaluate(&a)
	}
}

func BenchmarkJA4H(b *testing.B) {
	req := newRequest("GET", 1, 1, append(browser, "Referer: https://example.com/", "Cookie: session=abc123; theme=dark; _ga=GA1.2.3")...)
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJA4H(buf[:0], req)
	}
}

func BenchmarkJA4(b *testing.B) {
	h := specHello()
	buf := make([]byte, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJA4(buf[:0], h, OverTCP)
	}
}

func BenchmarkPassed(b *testing.B) {
	c := newChallenge(b, 16)
	cookie := string(c.AppendPass(nil, clientIP, clientUA, now))
	req := newRequest("GET", 1, 1, "User-Agent: "+string(clientUA), "Cookie: theme=dark; "+cookie)
	b.ReportAllocs()
	for b.Loop() {
		if !c.Passed(req, clientIP, now) {
			b.Fatal("not passed")
		}
	}
}
