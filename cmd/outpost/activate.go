package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/internal/sdnotify"
)

// activated returns the sockets systemd passed (socket activation), one
// per config listener, matched by port; nil when there are none. A
// listener without a passed socket of its port is refused: half of the
// listeners bound by systemd and half by the process would break on the
// next restart.
func activated(cfg *config.Config) ([]net.Listener, error) {
	lns, err := sdnotify.Listeners()
	if err != nil || len(lns) == 0 {
		return nil, err
	}
	byPort := map[int]net.Listener{}
	for _, l := range lns {
		if a, ok := l.Addr().(*net.TCPAddr); ok {
			byPort[a.Port] = l
		}
	}
	out := make([]net.Listener, len(cfg.Listeners))
	for i, lc := range cfg.Listeners {
		_, p, _ := net.SplitHostPort(lc.Addr)
		port, _ := strconv.Atoi(p)
		l, ok := byPort[port]
		if !ok {
			return nil, fmt.Errorf("socket activation: no socket passed for listeners[%d] (%s): add ListenStream=%s to the socket unit", i, lc.Addr, lc.Addr)
		}
		out[i] = l
	}
	return out, nil
}
