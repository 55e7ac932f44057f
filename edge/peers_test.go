package edge

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/pool"
)

type nopConn struct{}

func (nopConn) Close() error { return nil }

// Servers leaving the backend (a reload, or DNS discovery: same path,
// upstream.Backend.SetServers then serversChanged) take their peer and
// their pooled connections with them, however many have come and gone.
func TestBackendTablesFollowItsServersThroughChurn(t *testing.T) {
	cfg, err := config.Parse("churn.yaml", []byte(`
listeners: [{addr: "127.0.0.1:0"}]
upstreams:
  origin: {servers: [{addr: "127.0.0.1:9"}]}
routes: [{name: all, upstream: origin}]
`))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewShared(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const rounds = 2000
	var b *backend
	for i := range rounds {
		up := *cfg.Upstreams["origin"]
		addrs := []string{fmt.Sprintf("10.%d.%d.1:80", i/256, i%256), "127.0.0.1:9"}
		up.Servers = []config.Server{{Addr: addrs[0], Weight: 1}, {Addr: addrs[1], Weight: 1}}
		if b, err = s.backend("origin", &up); err != nil {
			t.Fatal(err)
		}
		for _, addr := range addrs { // requests to each server
			b.peerFor(addr)
			k := b.h1.PoolKey(addr)
			c, _, err := b.pool.Get(context.Background(), k, func(context.Context) (pool.Conn, error) { return nopConn{}, nil })
			if err != nil {
				t.Fatal(err)
			}
			b.pool.Put(k, c)
		}
	}
	peers := 0
	b.peers.Range(func(any, any) bool { peers++; return true })
	if peers > 2 || b.pool.Keys() > 2 {
		t.Errorf("after %d server changes the backend holds %d peers and %d pool keys, want 2 (its servers)", rounds, peers, b.pool.Keys())
	}
}
