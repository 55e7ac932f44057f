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
	// outpost.yaml:8: routes[0].cache.default_ttl: bad duration "1 year": want a Go duration such as 1.5s, 10m or 1d
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
