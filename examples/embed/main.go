// Command embed shows Outpost used as a library: it runs the config-driven
// edge, and adds phases of its own in Go by embedding *edge.App:
//
//   - EarlyRequest answers /whoami itself, with the client's address;
//   - Route sends requests carrying "X-Canary: 1" to the route named
//     "canary", and everything else through the config's routes.
//
// Picking a whole route, as Route does here, is the safe way to send some
// requests to another origin: the cache key starts with the route, so a
// canary page is never served to stable users. (A hook that only swapped
// the route's upstream would get no caching at all for those requests.)
//
// Run it with a config that has a route named canary:
//
//	go run ./examples/embed -c examples/embed/embed.yaml
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/node"
	"github.com/outpost-edge/outpost/proxy"
)

// canaryEdge is the config-driven App with two phases of our own; every
// other phase is the embedded App's.
type canaryEdge struct {
	*edge.App
}

// EarlyRequest answers /whoami without an upstream, then defers to the
// config's own early phase.
func (c canaryEdge) EarlyRequest(ctx *proxy.Ctx) (bool, error) {
	if string(ctx.Request.Path) == "/whoami" {
		return true, ctx.Respond(200, nil, []byte(ctx.Client.Addr().String()+"\n"))
	}
	return c.App.EarlyRequest(ctx)
}

// Route sends canary traffic to the "canary" route.
func (c canaryEdge) Route(ctx *proxy.Ctx) error {
	if string(ctx.Request.Header.Peek("X-Canary")) == "1" {
		if r := c.RouteNamed("canary"); r != nil {
			ctx.Route = r
			ctx.Trace.Add("canary", "header")
			return nil
		}
	}
	return c.App.Route(ctx)
}

// start runs the edge for cfg with the canary phases.
func start(cfg *config.Config) (*node.Node, error) {
	return node.Start(cfg, node.Options{
		Phases: func(app *edge.App) any { return canaryEdge{app} },
	})
}

func main() {
	file := flag.String("c", "examples/embed/embed.yaml", "config file")
	flag.Parse()
	cfg, err := config.Load(*file)
	if err != nil {
		log.Fatal(err)
	}
	n, err := start(cfg)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("embedded edge on", n.Addrs())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n.Shutdown(ctx)
}
