package main

import (
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/internal/demo"
	"github.com/outpost-edge/outpost/node"
)

// demoConfig is the edge config of the demo, in front of the built-in
// package index origin.
const demoConfig = `
listeners:
  - addr: 127.0.0.1:8080
admin:
  addr: 127.0.0.1:9090
upstreams:
  index:
    servers: [{addr: "%s"}]
routes:
  - name: packages
    match: {path_prefix: /packages/}
    upstream: index
    cache: {enabled: true}
  - name: index
    upstream: index
    cache:
      enabled: true
      stale_if_error: 1d
storage:
  memory: {size: 256MiB}
log:
  access: stdout
`

// parseDemoConfig returns the demo's config in front of the origin at
// addr. It names no file: there is none to reload.
func parseDemoConfig(origin net.Addr) (*config.Config, error) {
	return config.Parse("", []byte(fmt.Sprintf(demoConfig, origin)))
}

// runDemo runs the built-in package index origin and the edge in front of it.
func runDemo() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	origin := &http.Server{Handler: demo.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go origin.Serve(l)
	defer origin.Close()
	cfg, err := parseDemoConfig(l.Addr())
	if err != nil {
		return err
	}
	n, err := node.Start(cfg, node.Options{})
	if err != nil {
		return err
	}
	// The demo config names no admin token: the node has generated one.
	token, err := node.DefaultTokenFile()
	if err != nil {
		return err
	}
	fmt.Printf(`Outpost demo: a package index origin on %s, the edge on http://127.0.0.1:8080
The admin API on 127.0.0.1:9090 takes the token in %s.
Try:
  curl -i http://127.0.0.1:8080/simple/requests/          (twice: see Cache-Status)
  curl -i -H 'X-Outpost-Trace: 1' http://127.0.0.1:8080/simple/   (every decision)
  curl -s -H "Authorization: Bearer $(tail -n1 '%s')" http://127.0.0.1:9090/metrics | grep outpost_
  outpost purge --key project/requests --soft                 (or: go run ./cmd/outpost purge ...)
Stop with Ctrl-C.
`, l.Addr(), token, token)
	return serveSignals(n, "", nil)
}
