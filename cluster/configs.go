package cluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"
)

// LocalKeys are the top-level config keys a pushed config does not set:
// each node keeps its own (its addresses, its storage, its place in the
// cluster).
var LocalKeys = []string{"listeners", "admin", "storage", "cluster"}

// Merge lays a pushed config over a node's own file: the node's LocalKeys
// are kept, every other key comes from the pushed config.
func Merge(local, pushed []byte) ([]byte, error) {
	var l, p yaml.Node
	if err := yaml.Unmarshal(local, &l); err != nil {
		return nil, fmt.Errorf("the node's config: %w", err)
	}
	if err := yaml.Unmarshal(pushed, &p); err != nil {
		return nil, fmt.Errorf("the pushed config: %w", err)
	}
	out := &yaml.Node{Kind: yaml.MappingNode}
	for _, pair := range pairs(&p) {
		if !slices.Contains(LocalKeys, pair[0].Value) {
			out.Content = append(out.Content, pair[0], pair[1])
		}
	}
	for _, pair := range pairs(&l) {
		if slices.Contains(LocalKeys, pair[0].Value) {
			out.Content = append(out.Content, pair[0], pair[1])
		}
	}
	return yaml.Marshal(out)
}

// pairs lists the key and value nodes of a YAML document's top mapping.
func pairs(doc *yaml.Node) [][2]*yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := doc.Content[0].Content
	out := make([][2]*yaml.Node, 0, len(m)/2)
	for i := 0; i+1 < len(m); i += 2 {
		out = append(out, [2]*yaml.Node{m[i], m[i+1]})
	}
	return out
}

// PushResult is the answer to a config push or rollback.
type PushResult struct {
	Revision uint64 `json:"revision"`
	// Applied names the members that run it; Refused gives the reason of
	// each that refused it; Missing names those that said nothing in
	// time.
	Applied []string          `json:"applied"`
	Refused map[string]string `json:"refused,omitempty"`
	Missing []string          `json:"missing,omitempty"`
}

// Version is one stored config revision.
type Version struct {
	Revision    uint64    `json:"revision"`
	Created     time.Time `json:"created"`
	Bytes       int       `json:"bytes"`
	Fingerprint string    `json:"sha256"`
}

// ErrRefusedHere is returned by Push when the accepting node itself finds
// the config invalid: it is not stored.
var ErrRefusedHere = errors.New("config refused by the accepting node")

// Push stores a config as a new revision after checking it here, and
// waits until every member up applied or refused it, or purge_timeout.
func (c *Cluster) Push(data []byte) (PushResult, error) {
	if err := c.host.CheckConfig(data); err != nil {
		return PushResult{}, fmt.Errorf("%w: %w", ErrRefusedHere, err)
	}
	return c.store(data)
}

// Rollback stores revision rev again, as a new revision.
func (c *Cluster) Rollback(rev uint64) (PushResult, error) {
	kv := c.kv.Load()
	if kv == nil {
		return PushResult{}, errNoJetStream
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PurgeTimeout)
	defer cancel()
	e, err := (*kv).GetRevision(ctx, configKey, rev)
	if err != nil {
		return PushResult{}, fmt.Errorf("cluster: config revision %d: %w", rev, err)
	}
	return c.store(e.Value())
}

func (c *Cluster) store(data []byte) (PushResult, error) {
	kv := c.kv.Load()
	if kv == nil {
		return PushResult{}, errNoJetStream
	}
	deadline := time.Now().Add(c.cfg.PurgeTimeout)
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	names := c.liveMembers()
	rev, err := (*kv).Put(ctx, configKey, data)
	if err != nil {
		return PushResult{}, fmt.Errorf("cluster: the config was not stored: %w", err)
	}
	res := PushResult{Revision: rev, Refused: map[string]string{}}
	res.Missing = c.waitMembers(names, deadline, func(m *Member) bool {
		return m.ConfigVersion >= rev || m.ConfigRefused >= rev
	})
	st := c.Status()
	for _, m := range st.Members {
		switch {
		case !slices.Contains(names, m.Name) || slices.Contains(res.Missing, m.Name):
		case m.ConfigVersion >= rev:
			res.Applied = append(res.Applied, m.Name)
		default:
			res.Refused[m.Name] = m.ConfigError
		}
	}
	return res, nil
}

// History lists the stored config revisions, oldest first.
func (c *Cluster) History() ([]Version, error) {
	kv := c.kv.Load()
	if kv == nil {
		return nil, errNoJetStream
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PurgeTimeout)
	defer cancel()
	entries, err := (*kv).History(ctx, configKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return []Version{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("cluster: config history: %w", err)
	}
	out := make([]Version, 0, len(entries))
	for _, e := range entries {
		sum := sha256.Sum256(e.Value())
		out = append(out, Version{Revision: e.Revision(), Created: e.Created(), Bytes: len(e.Value()),
			Fingerprint: hex.EncodeToString(sum[:])})
	}
	return out, nil
}

// watchConfig applies each new config revision as it is stored, the
// latest first when the node starts.
func (c *Cluster) watchConfig(kv jetstream.KeyValue) error {
	w, err := kv.Watch(c.ctx, configKey)
	if err != nil {
		return fmt.Errorf("config bucket: watch: %w", err)
	}
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e == nil || e.Operation() != jetstream.KeyValuePut {
				continue // nil marks the end of the stored values
			}
			c.applyConfig(e.Value(), e.Revision())
		}
	}()
	return nil
}

// applyConfig applies revision rev, or records why not.
func (c *Cluster) applyConfig(data []byte, rev uint64) {
	if rev <= c.cfgVersion.Load() {
		return
	}
	if err := c.host.ApplyConfig(data); err != nil {
		msg := fmt.Sprintf("revision %d: %v", rev, err)
		c.cfgError.Store(&msg)
		c.cfgFailed.Store(rev)
		c.log.Error("cluster: pushed config refused; the running config stays", "revision", rev, "error", err)
	} else {
		c.cfgError.Store(nil)
		c.cfgVersion.Store(rev)
		c.log.Info("cluster: pushed config applied", "revision", rev)
	}
	c.publishState(false)
}
