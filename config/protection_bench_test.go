package config

import (
	"testing"

	"github.com/outpost-edge/outpost/guard"
)

const benchRules = `
protection:
  limits: [{name: anon, rate: 100}]
  rules:
    - {name: office, ips: [192.0.2.0/24, "2001:db8::/32"], action: allow}
    - {name: tools, user_agents: [curl, wget, python-requests], path_prefixes: [/simple/], action: challenge}
    - {name: headless, anomalies: [no_user_agent, browser_no_language], action: challenge}
    - name: foreign-posts
      expr: 'method == "POST" && !ip_in(ip, ["10.0.0.0/8", "172.16.0.0/12"]) && !("authorization" in headers)'
      action: deny
    - {name: everyone, action: rate_limit, limit: anon}
`

// BenchmarkGuardRules evaluates a typical rule set, one rule of it an
// expression, for a browser GET that reaches the last rule: the cost of
// the rules on every request.
func BenchmarkGuardRules(b *testing.B) {
	c, err := Parse("bench.yaml", []byte(benchRules))
	if err != nil {
		b.Fatal(err)
	}
	rules, err := c.Protection.GuardRules(nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	rs, err := guard.NewRules(rules)
	if err != nil {
		b.Fatal(err)
	}
	a := request("198.51.100.7", "GET", "/simple/pip/", "Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0")
	a.Request.Header.AddString("Accept-Language", "en")
	ip, req := a.IP, a.Request
	b.ReportAllocs()
	for b.Loop() {
		a.Reset(ip, "", req)
		if v := rs.Evaluate(a); v.Rule != "everyone" {
			b.Fatalf("verdict %+v", v)
		}
	}
}
