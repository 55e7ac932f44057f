package cluster

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
	"github.com/outpost-edge/outpost/internal/testnet"
)

// fakeHost records what the cluster asks of a node.
type fakeHost struct {
	mu      sync.Mutex
	purges  []edge.PurgeRequest
	at      []time.Time
	configs []string
	refuse  string // ApplyConfig refuses configs holding this
	notify  chan struct{}
}

func newFakeHost() *fakeHost { return &fakeHost{notify: make(chan struct{}, 1024)} }

func (h *fakeHost) Purge(r edge.PurgeRequest) (edge.PurgeResult, error) {
	h.mu.Lock()
	h.purges = append(h.purges, r)
	h.at = append(h.at, time.Now())
	h.mu.Unlock()
	select {
	case h.notify <- struct{}{}:
	default:
	}
	return edge.PurgeResult{Objects: 1}, nil
}

func (h *fakeHost) CheckConfig(data []byte) error {
	if strings.Contains(string(data), "invalid") {
		return errors.New("invalid config")
	}
	return nil
}

func (h *fakeHost) ApplyConfig(data []byte) error {
	if err := h.CheckConfig(data); err != nil {
		return err
	}
	h.mu.Lock()
	if h.refuse != "" && strings.Contains(string(data), h.refuse) {
		h.mu.Unlock()
		return errors.New("refused here")
	}
	h.configs = append(h.configs, string(data))
	h.mu.Unlock()
	return nil
}

// lastConfig is the config h applied last (the cluster's watch applies
// configs on a goroutine of its own).
func (h *fakeHost) lastConfig() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.configs[len(h.configs)-1]
}

func (h *fakeHost) setRefuse(s string) {
	h.mu.Lock()
	h.refuse = s
	h.mu.Unlock()
}

func (h *fakeHost) Describe(m *Member) { m.Edge = []string{"127.0.0.1:0"} }

func (h *fakeHost) Draining() bool { return false }

// urlsPurged lists the URL purges h applied, and whether it purged all.
func (h *fakeHost) urlsPurged() (urls []string, all bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, p := range h.purges {
		urls = append(urls, p.URLs...)
		all = all || p.All
	}
	return urls, all
}

// testConfigs are the cluster blocks of n nodes routed to each other.
func testConfigs(t testing.TB, n int) []config.Cluster {
	addrs := testnet.FreeAddrs(t, n)
	cfgs := make([]config.Cluster, n)
	for i := range n {
		cfgs[i] = config.Default().Cluster
		cfgs[i].Name = fmt.Sprintf("n%d", i+1)
		cfgs[i].Listen = addrs[i]
		cfgs[i].Dir = t.TempDir()
		cfgs[i].PurgeTimeout = 3 * time.Second
		for j, a := range addrs {
			if j != i {
				cfgs[i].Routes = append(cfgs[i].Routes, a)
			}
		}
	}
	return cfgs
}

func startNode(t testing.TB, cfg config.Cluster, h Host) *Cluster {
	c, err := Start(cfg, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// startCluster starts n nodes and waits until each is ready and sees
// the others.
func startCluster(t testing.TB, n int) ([]*Cluster, []*fakeHost, []config.Cluster) {
	cfgs := testConfigs(t, n)
	cs := make([]*Cluster, n)
	hs := make([]*fakeHost, n)
	for i := range n {
		hs[i] = newFakeHost()
		cs[i] = startNode(t, cfgs[i], hs[i])
	}
	t.Cleanup(func() {
		for _, c := range cs {
			if c != nil {
				c.Close()
			}
		}
	})
	for _, c := range cs {
		waitReady(t, c, n)
	}
	return cs, hs, cfgs
}

// waitReady waits until c has replayed and sees n live members.
func waitReady(t testing.TB, c *Cluster, n int) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if c.isReady() && c.kv.Load() != nil && len(c.liveMembers()) == n {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s not ready with %d members: ready=%v members=%v", c.cfg.Name, n, c.isReady(), c.liveMembers())
}

func TestPurgeIsAppliedByEveryNodeBeforeTheAnswer(t *testing.T) {
	cs, hs, _ := startCluster(t, 3)
	res, err := cs[1].Purge(edge.PurgeRequest{URLs: []string{"http://a/x"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(res.Applied)
	if !slices.Equal(res.Applied, []string{"n1", "n2", "n3"}) || len(res.Missing) > 0 || res.Objects != 1 {
		t.Fatalf("result %+v: want applied by n1 n2 n3, 1 object here", res)
	}
	for i, h := range hs {
		if urls, _ := h.urlsPurged(); !slices.Contains(urls, "http://a/x") {
			t.Errorf("node %d did not purge before the answer: %v", i+1, urls)
		}
	}
	st := cs[1].Status() // the accepting node saw every member apply it
	if len(st.Members) != 3 || st.Members[0].Name != "n2" || !st.Members[2].Up || st.Members[2].PurgeSeq != res.Seq {
		t.Errorf("status %+v", st)
	}
}

// A node down during a purge applies it when it comes back (it replays
// the stream from the last purge it applied); one that finds the stream
// no longer holds what it missed soft-purges everything.
func TestRestartedNodeReplaysMissedPurges(t *testing.T) {
	cs, hs, cfgs := startCluster(t, 3)
	cs[2].Close()
	cs[2] = nil
	res, err := cs[0].Purge(edge.PurgeRequest{URLs: []string{"http://a/missed"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(res.Applied, "n3") {
		t.Fatalf("n3 is down, yet counted as applied: %+v", res)
	}
	h := newFakeHost()
	cs[2] = startNode(t, cfgs[2], h)
	waitReady(t, cs[2], 3)
	urls, all := h.urlsPurged()
	if !slices.Contains(urls, "http://a/missed") || all {
		t.Fatalf("after the restart n3 purged %v (all=%v): want the missed purge replayed", urls, all)
	}
	_ = hs
}

func TestNodeTooFarBehindPurgesEverythingSoftly(t *testing.T) {
	cfgs := testConfigs(t, 3)
	for i := range cfgs {
		cfgs[i].PurgeHistory = 2
	}
	var cs [3]*Cluster
	for i := range cs {
		cs[i] = startNode(t, cfgs[i], newFakeHost())
	}
	defer func() {
		for _, c := range cs {
			c.Close()
		}
	}()
	for _, c := range cs {
		waitReady(t, c, 3)
	}
	cs[2].Close()
	for i := range 4 {
		if _, err := cs[0].Purge(edge.PurgeRequest{URLs: []string{fmt.Sprintf("http://a/%d", i)}}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	h := newFakeHost()
	cs[2] = startNode(t, cfgs[2], h)
	waitReady(t, cs[2], 3)
	urls, all := h.urlsPurged()
	// The stream keeps the last 2 purges, so n3 has missed some: it
	// purges everything softly, then applies the purges still stored.
	// While n3's own replica catches up it may briefly hold every
	// purge; reading them there, n3 misses none and applies each one,
	// which loses no purge either.
	every := true
	for i := range 4 {
		every = every && slices.Contains(urls, fmt.Sprintf("http://a/%d", i))
	}
	dropped := all && !slices.Contains(urls, "http://a/0") && slices.Contains(urls, "http://a/3")
	if !dropped && !every {
		t.Fatalf("n3 purged %v all=%v: want everything softly then the purges still stored, or every purge", urls, all)
	}
}

func TestConfigPushRefusedByANodeKeepsItsVersion(t *testing.T) {
	cs, hs, _ := startCluster(t, 3)
	res, err := cs[0].Push([]byte("routes: [] # v1\n"))
	if err != nil || len(res.Applied) != 3 {
		t.Fatalf("push v1: %+v %v", res, err)
	}
	if _, err := cs[0].Push([]byte("invalid")); !errors.Is(err, ErrRefusedHere) {
		t.Fatalf("invalid config pushed: %v", err)
	}
	hs[2].setRefuse("v2")
	res, err = cs[1].Push([]byte("routes: [] # v2\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 2 || res.Refused["n3"] == "" {
		t.Fatalf("push v2: %+v: want n3 to refuse", res)
	}
	// n1 learns n3's state from n3's next announcement (every second).
	var n3 Member
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		n3 = cs[0].Status().Members[2]
		ok := n3.ConfigVersion == res.Revision-1 && n3.ConfigRefused == res.Revision && strings.Contains(n3.ConfigError, "refused here")
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("n3 state %+v", n3)
		}
	}
	hist, err := cs[2].History()
	if err != nil || len(hist) != 2 {
		t.Fatalf("history %+v %v", hist, err)
	}
	hs[2].setRefuse("")
	res, err = cs[2].Rollback(hist[0].Revision)
	if err != nil || len(res.Applied) != 3 {
		t.Fatalf("rollback: %+v %v", res, err)
	}
	if got := hs[0].lastConfig(); got != "routes: [] # v1\n" {
		t.Fatalf("after rollback n1 runs %q", got)
	}
}

func TestMergeKeepsTheNodesOwnKeys(t *testing.T) {
	local := "listeners: [{addr: 127.0.0.1:8181}]\nadmin: {addr: 127.0.0.1:9191}\nroutes: [{upstream: old}]\n"
	pushed := "listeners: [{addr: 0.0.0.0:80}]\nroutes: [{upstream: new}]\nlog: {level: debug}\n"
	out, err := Merge([]byte(local), []byte(pushed))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"8181", "9191", "upstream: new", "level: debug"} {
		if !strings.Contains(s, want) {
			t.Errorf("merged config lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "0.0.0.0:80") || strings.Contains(s, "old") {
		t.Errorf("merged config kept the pushed listeners or the old routes:\n%s", s)
	}
}

// BenchmarkPurgeLatency5 measures, with 5 nodes on loopback, the time from
// a purge's acceptance to its effect on each node; it reports the p50 and
// p99 over every (purge, node) pair.
func BenchmarkPurgeLatency5(b *testing.B) {
	cs, hs, _ := startCluster(b, 5)
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		for _, h := range hs {
			h.mu.Lock()
			h.at = h.at[:0]
			h.mu.Unlock()
		}
		start := time.Now()
		res, err := cs[i%5].Purge(edge.PurgeRequest{URLs: []string{fmt.Sprintf("http://a/%d", i)}}, "bench")
		if err != nil || len(res.Missing) > 0 {
			b.Fatalf("%+v %v", res, err)
		}
		for _, h := range hs {
			h.mu.Lock()
			lat = append(lat, h.at[0].Sub(start))
			h.mu.Unlock()
		}
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}
