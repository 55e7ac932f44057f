// Package cluster joins Outpost nodes over NATS: an embedded NATS server
// (github.com/nats-io/nats-server) routed to the other nodes' servers for
// one site, or an external NATS cluster reached by URL with TLS and
// credentials for many sites. It knows nothing of HTTP: the node gives it
// a Host that purges and applies configs locally.
//
// What it carries:
//
//   - Membership, on core NATS: every node publishes its state (name,
//     site, role, addresses, config version, last purge applied, health)
//     on outpost.member.NAME every second and after each purge it
//     applies; a member not heard from in three seconds is down.
//   - Purges, in the JetStream stream OUTPOST_PURGE (subject
//     outpost.purge), kept for purge_history messages. Every node, the
//     one that accepted a purge included, applies purges from the stream
//     in order, and records the stream sequence it applied last in Dir,
//     so that after a disconnect or a restart it replays from there. A
//     node that finds the stream no longer holds the purges it missed
//     (trimmed, or recreated) soft-purges its whole cache. The accepting
//     node answers once every member up when the purge was stored has
//     reported applying it, or at cluster.purge_timeout with the members
//     that did not.
//   - Configs, in the JetStream key-value bucket outpost_config (key
//     "config", 64 revisions): a node applies each new revision through
//     Host.ApplyConfig, atomically, and reports the revision it runs, or
//     the one it refused and why, in its member state.
//
// Who may publish: anyone who may connect to the NATS servers. An
// embedded server opens no client port (the node connects in-process)
// and its cluster port requires the secret of secret_env when set; an
// external NATS authenticates with the credentials file or the secret.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/edge"
)

// Host is what the cluster needs of the node it runs in.
type Host interface {
	// Purge applies a purge on this node only.
	Purge(edge.PurgeRequest) (edge.PurgeResult, error)
	// CheckConfig validates a pushed config as this node would apply it.
	CheckConfig(data []byte) error
	// ApplyConfig validates and applies a pushed config, atomically: on
	// an error the running config stays.
	ApplyConfig(data []byte) error
	// Describe fills the node's addresses and health.
	Describe(m *Member)
	// Draining reports whether the node is draining (it owns nothing).
	Draining() bool
}

// Cluster is a node's membership of a cluster.
type Cluster struct {
	cfg  config.Cluster
	host Host
	log  *slog.Logger

	ns        *server.Server // the embedded server; nil with an external URL
	peerToken string         // see PeerToken
	nc        *nats.Conn
	js        jetstream.JetStream
	started   time.Time

	applied atomic.Uint64 // the stream sequence of the last purge applied
	// streamReplicas is the purge stream's replicas, as last seen.
	streamReplicas atomic.Int32
	cfgVersion     atomic.Uint64 // the config revision running; 0 for the local file
	cfgFailed      atomic.Uint64 // the last revision refused
	cfgError       atomic.Pointer[string]

	mu      sync.Mutex
	members map[string]*Member
	changed chan struct{}  // closed and replaced when a member's state arrives
	objects map[uint64]int // objects purged here by purges this node accepted, by sequence

	kv    atomic.Pointer[jetstream.KeyValue] // nil until JetStream is reachable
	ready chan struct{}                      // closed once the missed purges are applied
	ctx   context.Context
	stop  context.CancelFunc
	wg    sync.WaitGroup
}

// The NATS names the cluster uses.
const (
	purgeStream   = "OUTPOST_PURGE"
	purgeSubject  = "outpost.purge"
	memberSubject = "outpost.member."
	configBucket  = "outpost_config"
	configKey     = "config"
	configHistory = 64
)

// Membership timing: a member is down when not heard from in downAfter.
const (
	heartbeat = time.Second
	downAfter = 3 * heartbeat
)

// Start joins the cluster cfg describes (cfg.Dir must be set). It returns
// once NATS is connected; the purge stream and the config bucket are set
// up in the background, as soon as JetStream answers (a clustered
// JetStream needs a majority of its servers): see Ready.
func Start(cfg config.Cluster, host Host, log *slog.Logger) (*Cluster, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	c := &Cluster{cfg: cfg, host: host, log: log.With("cluster", cfg.Name), started: time.Now(),
		members: map[string]*Member{}, changed: make(chan struct{}), objects: map[uint64]int{},
		ready: make(chan struct{})}
	c.ctx, c.stop = context.WithCancel(context.Background())
	if err := c.connect(); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.nc.Subscribe(memberSubject+"*", c.heard); err != nil {
		c.Close()
		return nil, fmt.Errorf("cluster: subscribe: %w", err)
	}
	c.wg.Add(2)
	go c.announce()
	go c.setup()
	return c, nil
}

// Ready is closed once the node has applied the purges it missed.
func (c *Cluster) Ready() <-chan struct{} { return c.ready }

// Close leaves the cluster: it says so to the others, stops the
// background work, and shuts the embedded server down.
func (c *Cluster) Close() {
	c.stop()
	if c.nc != nil {
		c.publishState(true)
		_ = c.nc.Flush()
	}
	c.wg.Wait()
	if c.nc != nil {
		c.nc.Close()
	}
	if c.ns != nil {
		c.ns.Shutdown()
		c.ns.WaitForShutdown()
	}
}

// setup creates (or finds) the purge stream and the config bucket, then
// applies purges and configs as they come, retrying until JetStream
// answers; then it keeps the streams' replicas at what the config asks
// as members come.
func (c *Cluster) setup() {
	defer c.wg.Done()
	// Hear the members first: a new stream gets no more replicas than
	// there are members up.
	wait := 3 * heartbeat / 2
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(wait):
		}
		err := c.follow()
		if err == nil {
			break
		}
		c.log.Warn("cluster: JetStream not ready; retrying", "error", err)
		wait = time.Second
	}
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-time.After(2 * time.Second):
		}
		c.scaleUp()
	}
}

// follow sets up the stream and the bucket and starts consuming both.
func (c *Cluster) follow() error {
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	stream, err := c.js.Stream(ctx, purgeStream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		stream, err = c.js.CreateStream(ctx, jetstream.StreamConfig{
			Name: purgeStream, Subjects: []string{purgeSubject}, Storage: jetstream.FileStorage,
			Replicas: c.replicasNow(), MaxMsgs: int64(c.cfg.PurgeHistory), Discard: jetstream.DiscardOld,
		})
	}
	if err != nil {
		return fmt.Errorf("purge stream: %w", err)
	}
	kv, err := c.js.KeyValue(ctx, configBucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = c.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: configBucket, History: configHistory, Replicas: c.replicasNow(), Storage: jetstream.FileStorage,
		})
	}
	if err != nil {
		return fmt.Errorf("config bucket: %w", err)
	}
	c.streamReplicas.Store(int32(stream.CachedInfo().Config.Replicas))
	if err := c.consumePurges(ctx, stream); err != nil {
		return err
	}
	c.kv.Store(&kv)
	return c.watchConfig(kv)
}

// replicas is how many servers should keep each message.
func (c *Cluster) replicas() int {
	if c.cfg.Replicas > 0 {
		return c.cfg.Replicas
	}
	return min(3, c.cfg.Members())
}

// replicasNow is how many servers can keep each message now: no more
// than the members up (any two of three nodes form a working cluster).
func (c *Cluster) replicasNow() int { return min(c.replicas(), len(c.liveMembers())) }

// scaleUp raises the streams' replicas to what the config asks once
// enough members are up (they were created with fewer).
func (c *Cluster) scaleUp() {
	want := c.replicasNow()
	ctx, cancel := context.WithTimeout(c.ctx, 5*time.Second)
	defer cancel()
	for _, name := range []string{purgeStream, "KV_" + configBucket} {
		s, err := c.js.Stream(ctx, name)
		if err != nil {
			continue
		}
		cfg := s.CachedInfo().Config
		if name == purgeStream {
			c.streamReplicas.Store(int32(cfg.Replicas))
		}
		if cfg.Replicas >= want {
			continue
		}
		cfg.Replicas = want
		if _, err := c.js.UpdateStream(ctx, cfg); err != nil {
			c.log.Warn("cluster: cannot add replicas", "stream", name, "replicas", want, "error", err)
		} else {
			c.log.Info("cluster: replicas added", "stream", name, "replicas", want)
		}
	}
}

// seqFile holds the sequence of the last purge applied here.
func (c *Cluster) seqFile() string { return filepath.Join(c.cfg.Dir, "purge.seq") }

// errNoJetStream is returned while JetStream is not reachable.
var errNoJetStream = errors.New("cluster: JetStream is not ready (a clustered JetStream needs a majority of its servers)")
