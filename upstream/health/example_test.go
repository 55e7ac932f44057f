package health_test

import (
	"context"
	"fmt"

	"github.com/outpost-edge/outpost/upstream"
	"github.com/outpost-edge/outpost/upstream/health"
)

// Wiring a checker to a backend: verdicts flip the servers' health, and the
// targets follow the backend's servers.
func ExampleChecker() {
	b, err := upstream.New(upstream.Config{Name: "origin"}, []*upstream.Server{{Addr: "127.0.0.1:1"}})
	if err != nil {
		panic(err)
	}
	c, err := health.New(health.Config{Fall: 1}, health.TCP{}, func(addr string, healthy bool) {
		b.SetHealthy(addr, healthy)
	}, nil)
	if err != nil {
		panic(err)
	}
	c.SetTargets(b.Addrs(nil)) // again after each SetServers

	c.Check(context.Background()) // in production: go c.Run(ctx)
	fmt.Println(b.Stats(nil)[0].Healthy)
	// Output: false
}
