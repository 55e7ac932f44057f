package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testnet"
)

// clusterToken is the admin token (and cluster secret) of the test nodes.
const clusterToken = "test-token-0123456789abcdef"

// exampleCluster runs the nodes of examples/cluster with the real
// binary, on fresh ports, with a disk tier each (so that a restarted
// node still holds what it cached).
type exampleCluster struct {
	t      *testing.T
	files  []string // by node number, from 1
	edge   []string
	admin  []string
	procs  []*exec.Cmd
	out    []*syncBuf
	origin *countingOrigin
	dir    string
}

// countingOrigin answers every path with a body naming how many times
// it was fetched, cacheable for five minutes.
type countingOrigin struct {
	mu      sync.Mutex
	fetches map[string]int
	addr    string
}

func (o *countingOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.fetches[r.URL.Path]++
	n := o.fetches[r.URL.Path]
	o.mu.Unlock()
	w.Header().Set("Cache-Control", "max-age=300")
	fmt.Fprintf(w, "%s #%d\n", r.URL.Path, n)
}

func (o *countingOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches[path]
}

// newExampleCluster writes examples/cluster's files with fresh ports.
func newExampleCluster(t *testing.T) *exampleCluster {
	c := newTestCluster(t, 3)
	// The example's fixed ports, each replaced by a free one.
	ports := map[string]string{"127.0.0.1:8180": c.origin.addr}
	for i := 1; i <= 3; i++ {
		ports[fmt.Sprintf("127.0.0.1:818%d", i)] = c.edge[i]
		ports[fmt.Sprintf("127.0.0.1:919%d", i)] = c.admin[i]
		ports[fmt.Sprintf("127.0.0.1:718%d", i)] = testnet.FreeAddr(t)
	}
	for i := 1; i <= 3; i++ {
		b, err := os.ReadFile(fmt.Sprintf("../../examples/cluster/node%d.yaml", i))
		if err != nil {
			t.Fatal(err)
		}
		s := string(b)
		for from, to := range ports {
			s = strings.ReplaceAll(s, from, to)
		}
		c.write(i, s)
	}
	return c
}

// newNodesCluster writes the configs of n nodes shaped as the example's.
// extra is added to each node's cluster block (", shard: true").
func newNodesCluster(t *testing.T, n int, extra string) *exampleCluster {
	c := newTestCluster(t, n)
	routes := make([]string, n+1)
	for i := 1; i <= n; i++ {
		routes[i] = testnet.FreeAddr(t)
	}
	for i := 1; i <= n; i++ {
		others := slices.Delete(slices.Clone(routes[1:]), i-1, i)
		c.write(i, fmt.Sprintf(`listeners: [{addr: %q}]
admin: {addr: %q, token_env: OUTPOST_ADMIN_TOKEN}
cluster: {name: node%d, listen: %q, routes: [%s], secret_env: OUTPOST_ADMIN_TOKEN%s}
upstreams: {origin: {servers: [{addr: %q}]}}
routes: [{upstream: origin, cache: {enabled: true}}]
`, c.edge[i], c.admin[i], i, routes[i], strings.Join(others, ", "), extra, c.origin.addr))
	}
	return c
}

// write writes node i's config, with a disk tier and no access log.
func (c *exampleCluster) write(i int, cfg string) {
	cfg += fmt.Sprintf("storage: {disk: {path: %s, size: 64MiB}}\nlog: {access: \"off\"}\n", filepath.Join(c.dir, fmt.Sprint("disk", i)))
	c.files[i] = filepath.Join(c.dir, fmt.Sprintf("node%d.yaml", i))
	if err := os.WriteFile(c.files[i], []byte(cfg), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// newTestCluster starts the counting origin and picks the nodes' ports.
func newTestCluster(t *testing.T, n int) *exampleCluster {
	o := &countingOrigin{fetches: map[string]int{}}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: o}
	go srv.Serve(ol)
	t.Cleanup(func() { srv.Close() })
	o.addr = ol.Addr().String()
	c := &exampleCluster{t: t, origin: o, dir: t.TempDir(), files: make([]string, n+1), edge: make([]string, n+1),
		admin: make([]string, n+1), procs: make([]*exec.Cmd, n+1), out: make([]*syncBuf, n+1)}
	for i := 1; i <= n; i++ {
		c.edge[i], c.admin[i] = testnet.FreeAddr(t), testnet.FreeAddr(t)
	}
	t.Cleanup(func() {
		for i, o := range c.out {
			if o != nil && t.Failed() {
				t.Logf("node%d:\n%s", i, o.String())
			}
		}
		for _, p := range c.procs {
			if p != nil {
				p.Process.Kill()
				p.Wait()
			}
		}
	})
	return c
}

func (c *exampleCluster) env() []string {
	return append(testEnv(c.t), "OUTPOST_ADMIN_TOKEN="+clusterToken)
}

// start runs node i and waits until its edge listener accepts.
func (c *exampleCluster) start(i int) {
	c.t.Helper()
	cmd := exec.Command(binary, "run", "-c", c.files[i])
	c.out[i] = &syncBuf{}
	cmd.Env, cmd.Stdout, cmd.Stderr = c.env(), c.out[i], c.out[i]
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[i] = cmd
	deadline := time.Now().Add(60 * time.Second)
	for {
		if conn, err := net.Dial("tcp", c.edge[i]); err == nil {
			conn.Close()
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("node%d did not listen:\n%s", i, c.out[i].String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// softPurgesOfACache counts the times node i's current process
// soft-purged a cache that held objects, from its log.
func (c *exampleCluster) softPurgesOfACache(i int) int {
	count := 0
	for _, line := range strings.Split(c.out[i].String(), "\n") {
		var e struct {
			Msg     string
			Objects int
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "cluster: soft-purged everything" && e.Objects > 0 {
			count++
		}
	}
	return count
}

// kill ends node i with SIGKILL.
func (c *exampleCluster) kill(i int) {
	c.procs[i].Process.Kill()
	c.procs[i].Wait()
	c.procs[i] = nil
}

// get fetches path through node i, for the host pkg.test.
func (c *exampleCluster) get(i int, path string) string {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.edge[i]+path, nil)
	req.Host = "pkg.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("GET %s through node%d: %v", path, i, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		c.t.Fatalf("GET %s through node%d: %s %s", path, i, resp.Status, b)
	}
	return string(b)
}

// call sends a request to node i's admin API and decodes its JSON answer.
func (c *exampleCluster) call(i int, method, path, body string, v any) int {
	c.t.Helper()
	req, _ := http.NewRequest(method, "http://"+c.admin[i]+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+clusterToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("%s %s on node%d: %v", method, path, i, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			c.t.Fatalf("%s %s on node%d: %s: %s", method, path, i, resp.Status, b)
		}
	}
	return resp.StatusCode
}

type clusterMember struct {
	Name          string `json:"name"`
	Health        string `json:"health"`
	Up            bool   `json:"up"`
	PurgeSeq      uint64 `json:"purge_seq"`
	ConfigVersion uint64 `json:"config_version"`
	ConfigError   string `json:"config_error"`
}

// members returns the members node i sees up.
func (c *exampleCluster) members(i int) map[string]clusterMember {
	var st struct {
		Members []clusterMember `json:"members"`
	}
	c.call(i, "GET", "/cluster", "", &st)
	up := map[string]clusterMember{}
	for _, m := range st.Members {
		if m.Up {
			up[m.Name] = m
		}
	}
	return up
}

// waitFor polls cond for up to 30s.
func (c *exampleCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type purgeAnswer struct {
	Seq     uint64   `json:"seq"`
	Applied []string `json:"applied"`
	Missing []string `json:"missing"`
	Error   string   `json:"error"`
}

// purge purges a URL of pkg.test through node i's admin API, again while
// the stream cannot store it (503: a stream leader is being elected).
func (c *exampleCluster) purge(i int, path string) (int, purgeAnswer) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var a purgeAnswer
		status := c.call(i, "POST", "/purge", `{"urls": ["http://pkg.test`+path+`"]}`, &a)
		if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
			return status, a
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestClusterExample runs examples/cluster as its README says, with the
// real binary: any two nodes form a cluster whatever the start order, a
// purge through one node's admin API is effective on every node, a node
// stopped during a purge (a partition) or killed and restarted serves
// nothing it purged once back, and a config push of an invalid config is
// refused while the old config keeps serving.
func TestClusterExample(t *testing.T) {
	c := newExampleCluster(t)
	c.start(3)
	c.start(1)
	c.waitFor("node1 and node3 to see each other", func() bool { return len(c.members(1)) == 2 && len(c.members(3)) == 2 })

	// Two nodes: a purge through node1 is effective on node3 when it answers.
	c.get(3, "/a")
	c.get(1, "/a")
	if got := c.get(3, "/a"); got != "/a #1\n" && got != "/a #2\n" {
		t.Fatalf("node3 did not serve /a from its cache: %q", got)
	}
	before := c.origin.count("/a")
	status, a := c.purge(1, "/a")
	slices.Sort(a.Applied)
	if status != 200 || !slices.Equal(a.Applied, []string{"node1", "node3"}) {
		t.Fatalf("purge through node1: %d %+v", status, a)
	}
	c.get(3, "/a")
	if c.origin.count("/a") != before+1 {
		t.Fatalf("node3 served /a from its cache after the cluster purge")
	}

	// The third node joins.
	c.start(2)
	c.waitFor("three members", func() bool { return len(c.members(1)) == 3 && len(c.members(2)) == 3 })
	c.waitFor("three replicas of each purge", func() bool {
		var st struct{ Replicas int }
		c.call(1, "GET", "/cluster", "", &st)
		return st.Replicas == 3
	})

	// Partition: node2 is stopped during a purge; the answer names it, and
	// once it runs again it serves no purged object.
	c.get(2, "/b")
	before = c.origin.count("/b")
	c.procs[2].Process.Signal(syscall.SIGSTOP)
	status, a = c.purge(3, "/b")
	c.procs[2].Process.Signal(syscall.SIGCONT)
	if status != http.StatusGatewayTimeout || !slices.Contains(a.Missing, "node2") {
		t.Fatalf("purge with node2 stopped: %d %+v: want 504 naming node2", status, a)
	}
	c.waitFor("node2 to apply the purge", func() bool { return c.members(2)["node2"].PurgeSeq >= a.Seq })
	c.get(2, "/b")
	if c.origin.count("/b") != before+1 {
		t.Fatalf("node2 served /b from its cache after rejoining")
	}

	// Restart: node3 is killed, the purge is stored without it, and the
	// restarted node3 (whose disk tier still holds /c) replays it before
	// it serves.
	c.get(3, "/c")
	before = c.origin.count("/c")
	c.kill(3)
	c.waitFor("node1 to see node3 down", func() bool { _, ok := c.members(1)["node3"]; return !ok })
	status, a = c.purge(1, "/c")
	// 504 when a node's consumer was on node3's server: it is recreated
	// on another after missed heartbeats, and the answer names the node.
	if (status != 200 && status != http.StatusGatewayTimeout) || slices.Contains(a.Applied, "node3") || len(a.Applied)+len(a.Missing) != 2 {
		t.Fatalf("purge with node3 down: %d %+v", status, a)
	}
	c.waitFor("node1 and node2 to apply the purge", func() bool {
		m := c.members(1)
		return m["node1"].PurgeSeq >= a.Seq && m["node2"].PurgeSeq >= a.Seq
	})
	c.start(3)
	c.get(3, "/c")
	if c.origin.count("/c") != before+1 {
		t.Fatalf("restarted node3 served /c purged while it was down:\n%s", c.out[3].String())
	}

	// An invalid config is refused; the old one keeps serving everywhere.
	c.waitFor("three members", func() bool { return len(c.members(1)) == 3 })
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("routes:\n  - upstream: nowhere\n"), 0o644)
	var out bytes.Buffer
	cmdEnv(t, c.env())
	err := configCmd(&out, []string{"push", "--admin", c.admin[2], bad})
	if err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("invalid config push: %v %s", err, out.String())
	}
	for i := 1; i <= 3; i++ {
		if m := c.members(i)[fmt.Sprint("node", i)]; m.ConfigVersion != 0 {
			t.Fatalf("node%d runs pushed config %d after an invalid push", i, m.ConfigVersion)
		}
		c.get(i, "/ok")
	}

	// A valid config reaches every node: here it lets 127.0.0.1 send
	// PURGE, and a PURGE through node1 is cluster-wide.
	good := filepath.Join(t.TempDir(), "good.yaml")
	os.WriteFile(good, []byte(fmt.Sprintf("upstreams: {origin: {servers: [{addr: %q}]}}\nroutes: [{upstream: origin, cache: {enabled: true}}]\npurge: {allow_method_from: [127.0.0.1]}\nlog: {access: \"off\"}\n", c.origin.addr)), 0o644)
	out.Reset()
	err = configCmd(&out, []string{"push", "--admin", c.admin[2], good})
	// 504 when a node's watch of the bucket was on node3's server, killed
	// above: it is recreated on another after missed heartbeats, and the
	// node applies the config then.
	if err != nil && !strings.Contains(err.Error(), "504") {
		t.Fatalf("config push: %v %s", err, out.String())
	}
	var revision uint64
	c.waitFor("every node to run the pushed config", func() bool {
		m := c.members(1)
		revision = m["node1"].ConfigVersion
		return revision > 0 && m["node2"].ConfigVersion == revision && m["node3"].ConfigVersion == revision
	})
	c.get(2, "/d")
	before = c.origin.count("/d")
	req, _ := http.NewRequest("PURGE", "http://"+c.edge[1]+"/d", nil)
	req.Host = "pkg.test"
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PURGE through node1: %v %v", resp, err)
	}
	resp.Body.Close()
	c.get(2, "/d")
	if c.origin.count("/d") != before+1 {
		t.Fatalf("node2 served /d from its cache after a PURGE through node1")
	}

	out.Reset()
	if err := configCmd(&out, []string{"history", "--admin", c.admin[3]}); err != nil || !strings.Contains(out.String(), fmt.Sprintf(`"revision": %d`, revision)) {
		t.Fatalf("config history: %v %s", err, out.String())
	}
	out.Reset()
	if err := clusterCmd(&out, []string{"status", "--admin", c.admin[1]}); err != nil || strings.Count(out.String(), " up ") != 3 {
		t.Fatalf("cluster status: %v\n%s", err, out.String())
	}
}

// cmdEnv sets the environment the command functions read, for this test.
func cmdEnv(t *testing.T, env []string) {
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && (k == "OUTPOST_ADMIN_TOKEN" || k == "XDG_STATE_HOME") {
			t.Setenv(k, v)
		}
	}
}

// TestFiveNodesServeThroughAKilledNode runs five nodes under a load loop
// through every node up, while node5 is killed with SIGKILL and
// restarted and purges go through node1: no client error, every node
// applies every purge, and each object is fetched from the origin at
// most once per node and purge (the nodes do not share their caches),
// plus once per node that soft-purged its whole cache (a node that could
// not replay the purges it missed within catch_up_timeout does).
func TestFiveNodesServeThroughAKilledNode(t *testing.T) {
	const n = 5
	c := newNodesCluster(t, n, "")
	for i := 1; i <= n; i++ {
		c.start(i)
	}
	c.waitFor("five members and three replicas", func() bool {
		var st struct{ Replicas int }
		c.call(1, "GET", "/cluster", "", &st)
		return st.Replicas == 3 && len(c.members(1)) == n && len(c.members(n)) == n
	})

	// down is the node not to send to; the loop holds downMu for reading
	// from its check to its answer, so no request is in flight to a node
	// as it is killed.
	var downMu sync.RWMutex
	down := 0
	stop := make(chan struct{})
	var requests, failures int
	var failed []string
	done := make(chan struct{})
	go func() { // the load loop: bounded by stop and by 20000 requests
		defer close(done)
		client := &http.Client{Timeout: 5 * time.Second}
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			node := 1 + i%n
			downMu.RLock()
			if node == down {
				downMu.RUnlock()
				continue
			}
			req, _ := http.NewRequest("GET", fmt.Sprintf("http://%s/obj/%d", c.edge[node], (i/n)%20), nil)
			req.Host = "pkg.test"
			requests++
			resp, err := client.Do(req)
			if err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			downMu.RUnlock()
			if err != nil || resp.StatusCode != 200 {
				failures++
				failed = append(failed, fmt.Sprintf("node%d: %v %v", node, err, resp))
			}
		}
	}()
	time.Sleep(time.Second)
	downMu.Lock()
	down = n
	downMu.Unlock()
	c.kill(n)
	purged := map[string]int{}
	var last uint64
	for _, p := range []string{"/obj/1", "/obj/2"} {
		status, a := c.purge(1, p)
		if status != 200 && status != http.StatusGatewayTimeout {
			t.Fatalf("purge %s with node%d down: %d %+v", p, n, status, a)
		}
		purged[p]++
		last = a.Seq
	}
	c.start(n)
	downMu.Lock()
	down = 0
	downMu.Unlock()
	status, a := c.purge(2, "/obj/3")
	if status != 200 && status != http.StatusGatewayTimeout {
		t.Fatalf("purge after the restart: %d %+v", status, a)
	}
	purged["/obj/3"]++
	last = a.Seq
	time.Sleep(time.Second)
	close(stop)
	<-done
	if failures > 0 {
		t.Fatalf("%d of %d requests failed: %v", failures, requests, failed[:min(5, len(failed))])
	}
	c.waitFor("every node to apply every purge", func() bool {
		m := c.members(1)
		for i := 1; i <= n; i++ {
			if m[fmt.Sprint("node", i)].PurgeSeq < last {
				return false
			}
		}
		return true
	})
	wholePurges := 0
	for i := 1; i <= n; i++ {
		wholePurges += c.softPurgesOfACache(i)
	}
	for i := range 20 {
		p := fmt.Sprintf("/obj/%d", i)
		if got, most := c.origin.count(p), n*(1+purged[p])+wholePurges; got > most {
			t.Errorf("%s fetched %d times from the origin; at most %d expected", p, got, most)
		}
	}
	t.Logf("%d requests, 0 errors; origin fetches of /obj/1: %d, /obj/5: %d; whole caches soft-purged: %d",
		requests, c.origin.count("/obj/1"), c.origin.count("/obj/5"), wholePurges)
}

// TestShardedNodesFetchEachObjectOnce: with cluster.shard, a miss on a
// node that does not own the object fills from its owner, so each object
// is fetched from the origin once for the site; when an owner is killed,
// its objects are fetched again (once more at most), with no client
// error, first from the origin directly, then from their new owner.
func TestShardedNodesFetchEachObjectOnce(t *testing.T) {
	const n = 3
	c := newNodesCluster(t, n, ", shard: true")
	for i := 1; i <= n; i++ {
		c.start(i)
	}
	c.waitFor("three members serving", func() bool {
		for i := 1; i <= n; i++ {
			m := c.members(i)
			for _, name := range []string{"node1", "node2", "node3"} {
				if m[name].Health != "ok" {
					return false
				}
			}
		}
		return true
	})
	for obj := range 12 {
		for i := 1; i <= n; i++ {
			c.get(i, fmt.Sprintf("/s/%d", obj))
		}
	}
	for obj := range 12 {
		if got := c.origin.count(fmt.Sprintf("/s/%d", obj)); got != 1 {
			t.Errorf("/s/%d fetched %d times from the origin, want once for the site", obj, got)
		}
	}
	c.kill(3)
	deadline := time.Now().Add(5 * time.Second) // past the 3s it takes to see node3 down
	for round := 0; time.Now().Before(deadline); round++ {
		for i := 1; i <= 2; i++ {
			c.get(i, fmt.Sprintf("/s/%d", round%12)) // c.get fails the test on any error
			c.get(i, fmt.Sprintf("/t/%d", round%12))
		}
	}
	for obj := range 12 {
		// Owned by node3 (down): node1 and node2 each fetch it once from
		// the origin until they see node3 gone, then from the new owner.
		if got := c.origin.count(fmt.Sprintf("/t/%d", obj)); got > 2 {
			t.Errorf("/t/%d fetched %d times from the origin with its owner down", obj, got)
		}
	}
	t.Logf("origin fetches with node3 down: /t/0..11: %v", func() (out []int) {
		for obj := range 12 {
			out = append(out, c.origin.count(fmt.Sprintf("/t/%d", obj)))
		}
		return out
	}())
}
