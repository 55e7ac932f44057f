package config_test

import (
	"fmt"

	"github.com/outpost-edge/outpost/config"
)

func ExampleParse() {
	_, err := config.Parse("outpost.yaml", []byte(`
upstreams:
  origin:
    servers: [{addr: "127.0.0.1:8081"}]
routes:
  - name: packages
    upstream: orgin
    cache: {default_ttl: 1 year, stale_if_erorr: 1d}
`))
	fmt.Println(err)
	// Output:
	// outpost.yaml:7: routes[0].upstream: unknown upstream "orgin" (did you mean "origin"?)
	// outpost.yaml:8: routes[0].cache.default_ttl: bad duration "1 year": want a duration such as 90s, 1.5s, 10m or 1d
	// outpost.yaml:8: routes[0].cache.stale_if_erorr: unknown key (did you mean "stale_if_error"?)
}

func ExampleLoad() {
	c, err := config.Load("testdata/package-index.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	files := c.Routes[0]
	fmt.Println(files.Name, files.Upstream, files.Cache.DefaultTTL, c.Upstreams[files.Upstream].Balance)
	fmt.Println(c.Routes[1].Match.PathRegexp)
	// Output:
	// files files 8760h0m0s hash
	// ^/simple/.*$
}

func ExampleProtection_GuardRules() {
	c, err := config.Parse("outpost.yaml", []byte(`
protection:
  limits:
    - {name: anon, key: client_ip, rate: 100, per: 1s, burst: 200}
  rules:
    - name: office
      ips: [192.0.2.0/24]
      action: allow
    - name: scrapers
      user_agents: [curl, python-requests]
      expr: 'path.startsWith("/simple/") && !("accept-language" in headers)'
      action: challenge
    - name: everyone
      action: rate_limit
      limit: anon
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	rules, err := c.Protection.GuardRules(nil, nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, r := range rules {
		fmt.Println(r.Name, r.Action, r.Limit, r.Match != nil)
	}
	fmt.Println(c.Protection.FindLimit("anon").Limit())
	// Output:
	// office allow  false
	// scrapers challenge  true
	// everyone rate_limit anon false
	// {anon 100 1s 200}
}
