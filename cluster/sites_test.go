package cluster

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/internal/testnet"
)

// peerHost is a fakeHost that announces a peer address: its node's name.
type peerHost struct {
	*fakeHost
	name string
}

func (h *peerHost) Describe(m *Member) { m.Edge, m.Peer = []string{h.name + ":80"}, h.name+":80" }

// startNATS starts an in-process NATS server.
func startNATS(t *testing.T, opts *server.Options) *server.Server {
	opts.Host, opts.Port, opts.NoLog, opts.NoSigs = "127.0.0.1", server.RANDOM_PORT, true, true
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatalf("NATS server %s did not start", opts.ServerName)
	}
	t.Cleanup(ns.Shutdown)
	return ns
}

// TestTwoSitesOverALeafNode is the layout of several sites: site a's
// nodes use a NATS server with JetStream (the hub), site b's a NATS
// server of their own joined to the hub as a leaf node, without
// JetStream, so that the purge stream and the config bucket are the
// hub's for both sites. A purge accepted in site a is applied in site b
// before it answers, a purge accepted in site b in site a, and each
// site shards among its own nodes only.
func TestTwoSitesOverALeafNode(t *testing.T) {
	leafPort := testnet.FreeAddrs(t, 1)[0]
	_, port, _ := net.SplitHostPort(leafPort)
	p, _ := strconv.Atoi(port)
	hub := startNATS(t, &server.Options{ServerName: "hub", JetStream: true, JetStreamDomain: "hub", StoreDir: t.TempDir(),
		LeafNode: server.LeafNodeOpts{Host: "127.0.0.1", Port: p}})
	leafURL := &url.URL{Scheme: "nats-leaf", Host: leafPort}
	leaf := startNATS(t, &server.Options{ServerName: "leaf", LeafNode: server.LeafNodeOpts{
		Remotes: []*server.RemoteLeafOpts{{URLs: []*url.URL{leafURL}}}}})
	deadline := time.Now().Add(10 * time.Second)
	for leaf.NumLeafNodes() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the leaf node did not connect to the hub")
		}
		time.Sleep(20 * time.Millisecond)
	}

	names := []string{"a1", "a2", "b1", "b2"}
	cs := make([]*Cluster, len(names))
	hs := make([]*fakeHost, len(names))
	for i, name := range names {
		cfg := config.Default().Cluster
		cfg.Name, cfg.Site, cfg.Shard = name, name[:1], true
		cfg.URL, cfg.Dir, cfg.PurgeTimeout = hub.ClientURL(), t.TempDir(), 3*time.Second
		cfg.JetStreamDomain = "hub"
		if cfg.Site == "b" {
			cfg.URL = leaf.ClientURL()
		}
		hs[i] = newFakeHost()
		cs[i] = startNode(t, cfg, &peerHost{hs[i], name})
		t.Cleanup(cs[i].Close)
	}
	for _, c := range cs {
		waitReady(t, c, len(names))
	}

	for _, from := range []int{0, 3} {
		u := "http://pkg.test/from-" + names[from]
		res, err := cs[from].Purge(edge.PurgeRequest{URLs: []string{u}}, "test")
		if err != nil {
			t.Fatalf("purge through %s: %v", names[from], err)
		}
		slices.Sort(res.Applied)
		if !slices.Equal(res.Applied, names) || len(res.Missing) > 0 {
			t.Fatalf("purge through %s: %+v, want applied by %v", names[from], res, names)
		}
		for i, h := range hs {
			if urls, _ := h.urlsPurged(); !slices.Contains(urls, u) {
				t.Errorf("%s did not apply the purge from %s before the answer: %v", names[i], names[from], urls)
			}
		}
	}

	// Sharding stays inside a site: a1 fills only from a2, b1 only from b2.
	for i := range 200 {
		target := []byte(fmt.Sprintf("/simple/p%d/", i))
		if o := cs[0].Owner([]byte("pkg.test"), target); o != "" && o != "a2:80" {
			t.Fatalf("a1 fills %s from %q, outside its site", target, o)
		}
		if o := cs[2].Owner([]byte("pkg.test"), target); o != "" && o != "b2:80" {
			t.Fatalf("b1 fills %s from %q, outside its site", target, o)
		}
	}
}
