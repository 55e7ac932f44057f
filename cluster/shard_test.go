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

// Shields are the serving members of the site named with role shield;
// an edge and the shields agree on which owns a key; a shield of that
// site asks none (it fetches from the origin).
func TestShieldsAreServingShieldsOfTheSite(t *testing.T) {
	edge := shardView("s1", "s2", "edge2", "far", "down")
	for _, n := range []string{"s1", "s2", "far", "down"} {
		m := edge.members[n]
		m.Site, m.Role, m.Shield = "core", "shield", n+":81"
	}
	edge.members["far"].Site = "other"
	edge.members["down"].Seen = time.Now().Add(-time.Minute)
	shield := shardView("s2")
	shield.cfg.Name, shield.cfg.Site, shield.cfg.Role = "s1", "core", "shield"
	shield.members["s2"].Site, shield.members["s2"].Role = "core", "shield"
	picked := map[string]int{}
	for i := range 1000 {
		target := []byte(fmt.Sprint(i))
		s := edge.Shield("core", []byte("h"), target)
		picked[s]++
		owner := "s1:81"
		if o := shield.Owner([]byte("h"), target); o != "" {
			owner = "s2:81"
		}
		if s != owner {
			t.Fatalf("key %d: the edge asks %q, the shields' owner is %q", i, s, owner)
		}
		if got := shield.Shield("core", []byte("h"), target); got != "" {
			t.Fatalf("a shield of core asks %q for key %d", got, i)
		}
	}
	if len(picked) != 2 || picked["s1:81"] < 400 || picked["s2:81"] < 400 {
		t.Errorf("shields asked: %v, want s1 and s2, evenly", picked)
	}
	if s := edge.Shield("nowhere", []byte("h"), []byte("/")); s != "" {
		t.Errorf("shield of a site with none: %q", s)
	}
}
