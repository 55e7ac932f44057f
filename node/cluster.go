package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/cluster"
	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
)

// startCluster joins the cluster the config names, if any, and waits
// until the node has applied the purges it missed while it was away, at
// most catch_up_timeout: past it, it soft-purges its whole cache, so
// that it serves nothing a purge it missed may cover without
// revalidating it first.
func (n *Node) startCluster(cfg *config.Config) error {
	cc := cfg.Cluster
	if !cc.Enabled() {
		return nil
	}
	if cc.Dir == "" {
		dir, err := StateDir()
		if err != nil {
			return fmt.Errorf("cluster.dir: %w", err)
		}
		cc.Dir = filepath.Join(dir, "cluster", cc.Name)
	}
	host := &clusterHost{n: n}
	c, err := cluster.Start(cc, host, n.Log)
	if err != nil {
		return err
	}
	n.cluster, n.clusterHost = c, host
	if n.shard != nil {
		n.shard.c.Store(c)
	}
	n.shared.ClusterPurge = func(r edge.PurgeRequest, who string) (any, error) { return c.Purge(r, who) }
	select {
	case <-c.Ready():
	case <-time.After(cc.CatchUpTimeout):
		c.PurgeEverything(fmt.Sprintf("the purges missed could not be replayed in %s (catch_up_timeout)", cc.CatchUpTimeout))
	}
	return nil
}

// prepareShard gives the shared state the cluster's shields and sharding
// before the first App is built (routes wrap their upstream then); it
// knows the members once the cluster runs.
func (n *Node) prepareShard(cfg *config.Config) {
	if !cfg.Cluster.Enabled() {
		return
	}
	n.shard = &clusterShard{name: cfg.Cluster.Name}
	n.shared.Shield = n.shard
	if cfg.Cluster.Shard {
		n.shared.Shard = n.shard
	}
}

// clusterShard is edge.Sharder and edge.Shielder over the cluster, once
// it runs.
type clusterShard struct {
	name string
	c    atomic.Pointer[cluster.Cluster]
}

func (s *clusterShard) Shield(site string, host, target []byte) string {
	if c := s.c.Load(); c != nil {
		return c.Shield(site, host, target)
	}
	return ""
}

func (s *clusterShard) Name() string { return s.name }

func (s *clusterShard) Owner(host, target []byte) string {
	if c := s.c.Load(); c != nil {
		return c.Owner(host, target)
	}
	return ""
}

func (s *clusterShard) PeerToken() string {
	if c := s.c.Load(); c != nil {
		return c.PeerToken()
	}
	return ""
}

// clusterHost is what the cluster does on this node.
type clusterHost struct {
	n       *Node
	edges   atomic.Pointer[[]string] // the listeners' addresses, once open
	running atomic.Pointer[[]byte]   // the pushed config running; nil for the file alone
}

func (h *clusterHost) Purge(r edge.PurgeRequest) (edge.PurgeResult, error) {
	h.n.mu.Lock()
	app := h.n.app
	h.n.mu.Unlock()
	return app.Purge(r)
}

// pushed builds the config this node would run for a pushed one: its own
// file's local keys (cluster.LocalKeys) with the rest from the push.
func (h *clusterHost) pushed(data []byte) (*config.Config, error) {
	file := h.n.Config().File
	if file == "" {
		return nil, errors.New("this node did not start from a config file, which a pushed config needs for its local keys")
	}
	local, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	merged, err := cluster.Merge(local, data)
	if err != nil {
		return nil, err
	}
	// Relative paths resolve against the node's file; error lines are
	// those of the merged text.
	cfg, err := config.Parse(file, merged)
	if err != nil {
		return nil, fmt.Errorf("pushed config merged with %s: %w", file, err)
	}
	return cfg, nil
}

func (h *clusterHost) CheckConfig(data []byte) error {
	cfg, err := h.pushed(data)
	if err != nil {
		return err
	}
	old := h.n.Config()
	return refused(config.Diff(old, cfg), old, cfg)
}

func (h *clusterHost) ApplyConfig(data []byte) error {
	cfg, err := h.pushed(data)
	if err != nil {
		return err
	}
	if err := h.n.Reload(cfg); err != nil {
		return err
	}
	h.running.Store(&data)
	return nil
}

// fileConfig is what re-reading the config file means on a node that
// runs a pushed config: the file's local keys, the pushed rest (a SIGHUP
// does not undo a push). ok is false when the node runs its file alone.
func (n *Node) fileConfig() (cfg *config.Config, ok bool, err error) {
	if n.clusterHost == nil {
		return nil, false, nil
	}
	data := n.clusterHost.running.Load()
	if data == nil {
		return nil, false, nil
	}
	cfg, err = n.clusterHost.pushed(*data)
	return cfg, true, err
}

func (h *clusterHost) Describe(m *cluster.Member) {
	if e := h.edges.Load(); e != nil {
		m.Edge = *e
		m.Peer = h.n.Config().Cluster.PeerAddr
		if m.Peer == "" && len(*e) > 0 {
			m.Peer = (*e)[0]
		}
	}
	if a := h.n.AdminAddr(); a != nil {
		m.Admin = a.String()
	}
	if h.Draining() {
		m.Health = "draining"
	}
}

func (h *clusterHost) Draining() bool { return h.n.srv.Draining() }

// clusterOpened records the listeners' addresses for the membership.
func (n *Node) clusterOpened() {
	if n.cluster == nil {
		return
	}
	addrs := make([]string, len(n.lns))
	for i, l := range n.lns {
		addrs[i] = l.Addr().String()
	}
	n.clusterHost.edges.Store(&addrs)
}

// clusterAPI adds the cluster's admin endpoints:
//
//	GET  /cluster                  the members and their state
//	POST /cluster/config           push a config (YAML body) to every node
//	GET  /cluster/config/history   the stored config revisions
//	POST /cluster/config/rollback  {"revision": N}: push revision N again
func (a *adminServer) clusterAPI(mux *http.ServeMux) {
	mux.Handle("GET /cluster", a.auth(a.withCluster(func(c *cluster.Cluster, w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, c.Status())
	})))
	mux.Handle("POST /cluster/config", a.auth(a.withCluster(func(c *cluster.Cluster, w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxReloadBody))
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
		res, err := c.Push(body)
		a.n.Log.Info("config push", "who", a.who(r), "revision", res.Revision, "error", errString(err))
		answerPush(w, res, err)
	})))
	mux.Handle("GET /cluster/config/history", a.auth(a.withCluster(func(c *cluster.Cluster, w http.ResponseWriter, _ *http.Request) {
		h, err := c.History()
		if err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, h)
	})))
	mux.Handle("POST /cluster/config/rollback", a.auth(a.withCluster(func(c *cluster.Cluster, w http.ResponseWriter, r *http.Request) {
		var req struct {
			Revision uint64 `json:"revision"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&req); err != nil || req.Revision == 0 {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": `want {"revision": N}`})
			return
		}
		res, err := c.Rollback(req.Revision)
		a.n.Log.Info("config rollback", "who", a.who(r), "to", req.Revision, "revision", res.Revision, "error", errString(err))
		answerPush(w, res, err)
	})))
}

// withCluster answers 404 on a node that is in no cluster.
func (a *adminServer) withCluster(h func(*cluster.Cluster, http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if a.n.cluster == nil {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "this node is in no cluster (no cluster: block)"})
			return
		}
		h(a.n.cluster, w, r)
	})
}

// answerPush answers a push or rollback: 200 when every member up
// applied it, 422 when the accepting node refused it (not stored), 409
// when a member refused it, 504 when one did not answer, 503 when it
// could not be stored.
func answerPush(w http.ResponseWriter, res cluster.PushResult, err error) {
	switch {
	case errors.Is(err, cluster.ErrRefusedHere):
		writeJSON(w, http.StatusUnprocessableEntity, map[string]string{"error": err.Error()})
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	case len(res.Refused) > 0:
		writeJSON(w, http.StatusConflict, res)
	case len(res.Missing) > 0:
		writeJSON(w, http.StatusGatewayTimeout, res)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// clusterPurge runs a purge on every node of the cluster: it is checked
// here, stored in the purge stream, and answered once every member up
// applied it (200), or at purge_timeout naming those that did not (504).
// 503 when the stream did not store it: nothing was purged.
func (a *adminServer) clusterPurge(w http.ResponseWriter, r *http.Request, app *edge.App, req edge.PurgeRequest) {
	if err := app.CheckPurge(req); err != nil {
		status := http.StatusBadRequest
		if errors.Is(err, edge.ErrNoCache) {
			status = http.StatusNotImplemented
		}
		writeJSON(w, status, map[string]string{"error": err.Error()})
		return
	}
	res, err := a.n.cluster.Purge(req, a.who(r))
	switch {
	case err != nil:
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": err.Error()})
	case len(res.Missing) > 0:
		writeJSON(w, http.StatusGatewayTimeout, res)
	default:
		writeJSON(w, http.StatusOK, res)
	}
}
