package cluster

import (
	"fmt"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
)

// shardView is a node n1 that sees the members named, all up and
// serving, in its site.
func shardView(names ...string) *Cluster {
	cfg := config.Default().Cluster
	cfg.Name, cfg.Shard = "n1", true
	c := &Cluster{cfg: cfg, host: newFakeHost(), members: map[string]*Member{}, ready: make(chan struct{})}
	close(c.ready)
	for _, n := range names {
		c.members[n] = &Member{Name: n, Site: cfg.Site, Role: cfg.Role, Health: "ok", Peer: n + ":80", Seen: time.Now()}
	}
	return c
}

// Rendezvous hashing: keys spread evenly, and a node that joins takes
// about 1/N of them, from every other node, moving no other key.
func TestOwnersSpreadAndMoveOneNth(t *testing.T) {
	four := shardView("n2", "n3", "n4")
	five := shardView("n2", "n3", "n4", "n5")
	const keys = 20000
	owned := map[string]int{}
	moved := 0
	for i := range keys {
		target := []byte(fmt.Sprintf("/simple/p%d/", i))
		a, b := four.Owner([]byte("pkg.test"), target), five.Owner([]byte("pkg.test"), target)
		owned[a]++
		if a != b {
			moved++
			if b != "n5:80" {
				t.Fatalf("key %d moved from %q to %q, not to the new node", i, a, b)
			}
		}
	}
	for owner, n := range owned {
		if n < keys/4*9/10 || n > keys/4*11/10 {
			t.Errorf("%q owns %d of %d keys among 4 nodes", owner, n, keys)
		}
	}
	if moved < keys/5*9/10 || moved > keys/5*11/10 {
		t.Errorf("%d of %d keys moved when a fifth node came; want about 1/5", moved, keys)
	}
}

// Members of another site, down, or not serving own nothing here.
func TestOwnersAreServingMembersOfTheSite(t *testing.T) {
	c := shardView("other", "down", "draining")
	c.members["other"].Site = "elsewhere"
	c.members["down"].Seen = time.Now().Add(-time.Minute)
	c.members["draining"].Health = "draining"
	for i := range 1000 {
		if o := c.Owner([]byte("h"), []byte(fmt.Sprint(i))); o != "" {
			t.Fatalf("key %d owned by %q", i, o)
		}
	}
}
