package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// shieldOrigin answers /fresh/ paths cacheable for five minutes and
// already 10 seconds old (Age: 10), /swr/ paths fresh for a second then
// stale-while-revalidate for a minute, and /sie/ paths fresh for a second
// then stale-if-error for a minute, failing (503) from the second fetch.
type shieldOrigin struct {
	mu      sync.Mutex
	fetches map[string]int
}

func (o *shieldOrigin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	o.mu.Lock()
	o.fetches[r.URL.Path]++
	n := o.fetches[r.URL.Path]
	o.mu.Unlock()
	switch {
	case strings.HasPrefix(r.URL.Path, "/fresh/"):
		w.Header().Set("Cache-Control", "max-age=300")
		w.Header().Set("Age", "10")
	case strings.HasPrefix(r.URL.Path, "/swr/"):
		w.Header().Set("Cache-Control", "max-age=1, stale-while-revalidate=60")
	case strings.HasPrefix(r.URL.Path, "/sie/"):
		w.Header().Set("Cache-Control", "max-age=1, stale-if-error=60")
		if n > 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
	}
	fmt.Fprintf(w, "%s #%d\n", r.URL.Path, n)
}

func (o *shieldOrigin) count(path string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.fetches[path]
}

// shieldAnswer is a response through a node.
type shieldAnswer struct {
	status      int
	body        string
	age         int
	cacheStatus []string
}

// fetch gets host/path through node i.
func (c *exampleCluster) fetch(i int, host, path string) shieldAnswer {
	c.t.Helper()
	req, _ := http.NewRequest("GET", "http://"+c.edge[i]+path, nil)
	req.Host = host
	resp, err := (&http.Client{Timeout: 20 * time.Second}).Do(req)
	if err != nil {
		c.t.Fatalf("GET %s%s through node %d: %v", host, path, i, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	age, _ := strconv.Atoi(resp.Header.Get("Age"))
	var cs []string
	for _, v := range resp.Header.Values("Cache-Status") {
		for _, m := range strings.Split(v, ",") {
			cs = append(cs, strings.TrimSpace(m))
		}
	}
	return shieldAnswer{resp.StatusCode, string(b), age, cs}
}

// TestShieldTier runs four nodes of one cluster with the real binary:
// edge1 and edge2 in site pop, whose upstream names the shield site core;
// shield1, the shield of core; and shield2, the shield of site core2. Each
// object is fetched from the origin once for both edges, through shield1;
// Age adds up across the hops (RFC 9111 section 4.2.3); Cache-Status
// names both caches, the one nearer the origin first (RFC 9211 section
// 2); the shield's stale-while-revalidate does not stack on the edge's
// (the edge asks with max-stale=0, RFC 9111 section 5.2.1.2); a stale
// answer of the shield (stale-if-error) is stale at the edge, which asks
// again next time; and a request looping between two shield sites
// (loop.test, whose upstream on shield1 names core2 and on shield2 core)
// is refused with 508 (RFC 5842 section 7.2).
func TestShieldTier(t *testing.T) {
	o := &shieldOrigin{fetches: map[string]int{}}
	ol, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: o}
	go srv.Serve(ol)
	t.Cleanup(func() { srv.Close() })

	// The sites share one NATS server, as they would an external NATS
	// (embedded servers route only inside a site).
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true,
		StoreDir: t.TempDir(), Authorization: clusterToken, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(10 * time.Second) {
		t.Fatal("NATS server did not start")
	}
	t.Cleanup(ns.Shutdown)

	const n = 4
	c := newTestCluster(t, n)
	names := []string{"", "edge1", "edge2", "shield1", "shield2"}
	blocks := []string{"", "site: pop", "site: pop", "site: core, role: shield", "site: core2, role: shield"}
	loopShield := []string{"", "", "", "core2", "core"}
	for i := 1; i <= n; i++ {
		shield := ""
		if i <= 2 {
			shield = ", shield: core"
		}
		loop := ""
		if loopShield[i] != "" {
			loop = fmt.Sprintf(", loopy: {servers: [{addr: %q}], shield: %s}", ol.Addr(), loopShield[i])
		}
		c.write(i, fmt.Sprintf(`listeners: [{addr: %q}]
admin: {addr: %q, token_env: OUTPOST_ADMIN_TOKEN}
cluster: {name: %s, %s, url: %q, secret_env: OUTPOST_ADMIN_TOKEN}
upstreams: {origin: {servers: [{addr: %q}]%s}%s}
routes:
  - {name: loop, match: {hosts: [loop.test]}, upstream: %s, cache: {enabled: true}}
  - {name: all, upstream: origin, cache: {enabled: true}}
`, c.edge[i], c.admin[i], names[i], blocks[i], ns.ClientURL(), ol.Addr(), shield, loop,
			map[bool]string{true: "loopy", false: "origin"}[loopShield[i] != ""]))
	}
	for i := 1; i <= n; i++ {
		c.start(i)
	}
	c.waitFor("every node to see every node serving", func() bool {
		for i := 1; i <= n; i++ {
			m := c.members(i)
			for _, name := range names[1:] {
				if m[name].Health != "ok" {
					return false
				}
			}
		}
		return true
	})

	// One origin fetch for two edges; Age and Cache-Status of both hops.
	first := c.fetch(1, "pkg.test", "/fresh/a")
	time.Sleep(2 * time.Second)
	second := c.fetch(2, "pkg.test", "/fresh/a")
	if first.status != 200 || second.status != 200 || second.body != "/fresh/a #1\n" || o.count("/fresh/a") != 1 {
		t.Fatalf("through edge1 then edge2: %+v, %+v; origin fetches: %d, want 1", first, second, o.count("/fresh/a"))
	}
	if second.age < 12 {
		t.Errorf("Age through edge2 = %d, want at least 12: the origin's 10, and 2s at shield1", second.age)
	}
	if len(second.cacheStatus) != 2 || !strings.HasPrefix(second.cacheStatus[0], "shield1; hit") || !strings.HasPrefix(second.cacheStatus[1], "edge2; fwd=uri-miss") {
		t.Errorf("Cache-Status through edge2: %q, want shield1's hit then edge2's miss", second.cacheStatus)
	}
	time.Sleep(time.Second)
	if hit := c.fetch(2, "pkg.test", "/fresh/a"); hit.age < 13 || len(hit.cacheStatus) != 1 || !strings.HasPrefix(hit.cacheStatus[0], "edge2; hit") {
		t.Errorf("hit at edge2: Age %d, Cache-Status %q: want at least 13, edge2's hit", hit.age, hit.cacheStatus)
	}

	// The shield's stale-while-revalidate does not answer an edge: once
	// stale, edge2's first request is revalidated at the origin by shield1.
	c.fetch(1, "pkg.test", "/swr/a")
	time.Sleep(2500 * time.Millisecond)
	if got := c.fetch(2, "pkg.test", "/swr/a"); got.body != "/swr/a #2\n" || o.count("/swr/a") != 2 {
		t.Errorf("stale at shield1, first asked by edge2: %+v; origin fetches %d: want shield1 to revalidate", got, o.count("/swr/a"))
	}

	// A stale answer of the shield (the origin fails: stale-if-error) is
	// stale at edge2, which asks shield1 again next time.
	c.fetch(1, "pkg.test", "/sie/a")
	time.Sleep(2500 * time.Millisecond)
	stale := c.fetch(2, "pkg.test", "/sie/a")
	if stale.status != 200 || stale.body != "/sie/a #1\n" || stale.age < 2 {
		t.Fatalf("stale-if-error at shield1: %+v", stale)
	}
	before := o.count("/sie/a")
	again := c.fetch(2, "pkg.test", "/sie/a")
	if again.body != "/sie/a #1\n" || o.count("/sie/a") != before+1 || slices.ContainsFunc(again.cacheStatus, func(s string) bool { return strings.HasPrefix(s, "edge2; hit") }) {
		t.Errorf("edge2 served shield1's stale answer as fresh: %+v, origin fetches %d then %d", again, before, o.count("/sie/a"))
	}

	// A loop between core and core2 is refused.
	if got := c.fetch(3, "loop.test", "/l"); got.status != 508 || o.count("/l") != 0 {
		t.Errorf("looping request: %+v, origin fetches %d: want 508, none", got, o.count("/l"))
	}
	// A request naming this node in its hops is refused too.
	req, _ := http.NewRequest("GET", "http://"+c.edge[1]+"/fresh/b", nil)
	req.Host, req.Header["X-Outpost-Hops"] = "pkg.test", []string{"shield1, edge1"}
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 508 {
		t.Errorf("request that passed through edge1 already: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
}
