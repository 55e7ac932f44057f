// Command outpost is the Outpost edge proxy.
//
//	outpost                      run a demo: a package-index origin and the edge in front of it
//	outpost run -c FILE          run a config
//	outpost run --origin URL     run a generated config in front of an origin
//	outpost quickstart --origin URL [--domain NAME]... [-o FILE]   write that config
//	outpost validate -c FILE     check a config; exit 1 with file:line: key: reason
//	outpost purge --key K [--soft] | --url U | --all   purge through the admin API
//	outpost cluster status       the cluster's members, through the admin API
//	outpost config push FILE | history | rollback N   configs pushed to every node of a cluster
//	outpost fiddle [--addr A]    serve the Fiddle (127.0.0.1:8070)
//	outpost test FILE...         run fiddle test files; exit 1 on a failed assertion
//	outpost version
//
// The binary holds no request logic: it parses flags, loads the config,
// starts a node and turns signals into reloads (SIGHUP) and graceful
// stops (SIGTERM, SIGINT).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/internal/sdnotify"
	"github.com/outpost-edge/outpost/node"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "outpost:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) == 0 {
		return runDemo()
	}
	switch args[0] {
	case "run":
		if slices.ContainsFunc(args[1:], isOriginFlag) {
			return runOriginCmd(args[1:])
		}
		return runCmd(args[1:])
	case "quickstart":
		return quickstartCmd(args[1:], os.Stdout)
	case "validate":
		return validateCmd(args[1:])
	case "purge":
		return purgeCmd(args[1:])
	case "cluster":
		return clusterCmd(os.Stdout, args[1:])
	case "config":
		return configCmd(os.Stdout, args[1:])
	case "fiddle":
		return fiddleCmd(args[1:])
	case "test":
		return testCmd(args[1:])
	case "version":
		fmt.Println("outpost", node.Version)
		return nil
	case "-h", "--help", "help":
		fmt.Print(usage)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

const usage = `usage:
  outpost                       run the built-in demo (origin + edge on 127.0.0.1:8080)
  outpost run -c FILE           run a config
  outpost quickstart --origin URL [--domain NAME]... [--listen ADDR] [--admin ADDR] [--email E] [-o FILE]
                                write a commented config for an origin (stdout by default)
  outpost run --origin URL [--domain NAME]...   run that config without writing it
  outpost validate -c FILE      check a config
  outpost purge [--admin ADDR] [--token-file F] (--key K... | --url U... | --all) [--soft]
                                (token: --token-file, $OUTPOST_ADMIN_TOKEN, or the node's generated one)
  outpost cluster status [--admin ADDR] [--json]   the members of the node's cluster
  outpost config push FILE | history | rollback N [--admin ADDR]   configs for every node of a cluster
  outpost fiddle [--addr 127.0.0.1:8070] [--dir DIR] [--allow-remote]   try configs on requests in the browser
  outpost test FILE...          run fiddle test files; exit 1 on a failed assertion
  outpost version
`

func configFlag(name string, args []string, more ...func(*flag.FlagSet)) (*flag.FlagSet, *string, error) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	file := fs.String("c", "", "config file")
	for _, m := range more {
		m(fs)
	}
	if err := fs.Parse(args); err != nil {
		return nil, nil, err
	}
	if *file == "" {
		return nil, nil, errors.New(name + ": -c FILE is required")
	}
	return fs, file, nil
}

func validateCmd(args []string) error {
	_, file, err := configFlag("validate", args)
	if err != nil {
		return err
	}
	cfg, err := config.Load(*file)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(*file + ": ok: " + summary(cfg))
	return nil
}

// summary says what a valid config will run, so that an empty or
// routeless file is not mistaken for a working one.
func summary(cfg *config.Config) string {
	if len(cfg.Routes) == 0 {
		return "no routes: every request will be answered 404"
	}
	return fmt.Sprintf("%d listener(s), %d upstream(s), %d route(s)", len(cfg.Listeners), len(cfg.Upstreams), len(cfg.Routes))
}

func runCmd(args []string) error {
	var upgrade bool
	var sock string
	_, file, err := configFlag("run", args, func(fs *flag.FlagSet) {
		fs.BoolVar(&upgrade, "upgrade", false, "take the listeners over from the running process (zero-downtime upgrade)")
		fs.StringVar(&sock, "upgrade-socket", "", "Unix socket for upgrades, in a directory of this user that no other user can write to (default: derived from the config path, in $XDG_RUNTIME_DIR/outpost)")
	})
	if err != nil {
		return err
	}
	cfg, err := config.Load(*file)
	if err != nil {
		return err
	}
	var sockErr error // no socket: the node runs, without zero-downtime upgrades
	if sock == "" {
		sock, sockErr = node.UpgradeSocket(*file)
	}
	var opts node.Options
	var takeover *node.Takeover
	if upgrade {
		if sockErr != nil {
			return sockErr
		}
		if takeover, err = node.Inherit(sock); err != nil {
			return err
		}
		opts = takeover.Options
	} else if opts.Listeners, err = activated(cfg); err != nil {
		return err
	}
	opts.SetMemoryLimit = true
	n, err := node.Start(cfg, opts)
	if err != nil {
		return err
	}
	if takeover != nil {
		if err := takeover.Ready(); err != nil {
			n.Log.Error("could not tell the old process to drain", "error", err)
		}
	}
	var handedOver <-chan struct{}
	if sockErr == nil {
		handedOver, sockErr = n.ServeUpgrades(sock)
	}
	if sockErr != nil {
		n.Log.Warn("zero-downtime upgrades unavailable", "error", sockErr)
	}
	n.Log.Info("outpost running", "version", node.Version, "listeners", fmt.Sprint(n.Addrs()), "admin", fmt.Sprint(n.AdminAddr()), "upgrade_socket", sock)
	return serveSignals(n, *file, handedOver)
}

// serveSignals reloads on SIGHUP and drains on SIGTERM or SIGINT, or once
// a new process has taken the listeners over.
func serveSignals(n *node.Node, file string, handedOver <-chan struct{}) error {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	notify(n, sdnotify.Ready())
	for {
		select {
		case err := <-n.Err():
			return err
		case <-handedOver:
			notify(n, sdnotify.Stopping())
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			err := n.Shutdown(ctx)
			cancel()
			return err
		case sig := <-sigs:
			if sig == syscall.SIGHUP {
				notify(n, sdnotify.Reloading())
				if file == "" {
					n.Log.Warn("SIGHUP ignored: no config file")
				} else if err := n.ReloadFile(file); err != nil {
					n.Log.Error("reload failed; the running config stays", "error", err)
				}
				notify(n, sdnotify.Ready()) // the running config serves, new or old
				continue
			}
			notify(n, sdnotify.Stopping())
			n.Log.Info("draining", "signal", sig.String())
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := n.Shutdown(ctx)
			cancel()
			return err
		}
	}
}

// notify logs a failure to tell systemd the node's state.
func notify(n *node.Node, err error) {
	if err != nil {
		n.Log.Warn("could not notify systemd", "error", err)
	}
}
