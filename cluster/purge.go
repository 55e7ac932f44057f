package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/outpost-edge/outpost/edge"
)

// purgeMsg is one purge in the stream.
type purgeMsg struct {
	Node string   `json:"node"` // the node that accepted it
	Who  string   `json:"who"`  // who asked, for the logs
	URLs []string `json:"urls,omitempty"`
	Keys []string `json:"keys,omitempty"`
	All  bool     `json:"all,omitempty"`
	Soft bool     `json:"soft,omitempty"`
}

// PurgeResult is the answer to a cluster-wide purge.
type PurgeResult struct {
	// Objects is how many objects the purge touched on this node.
	Objects int `json:"objects"`
	// Seq is the purge's sequence in the stream.
	Seq uint64 `json:"seq"`
	// Applied names the members that applied it; Missing those up when
	// it was stored that did not within cluster.purge_timeout.
	Applied []string `json:"applied"`
	Missing []string `json:"missing,omitempty"`
}

// Purge stores a purge in the stream, from which every node applies it,
// and waits until every member up applied it or purge_timeout passed.
// who names the caller for the logs. It fails, purging nothing, when
// JetStream does not store it.
func (c *Cluster) Purge(r edge.PurgeRequest, who string) (PurgeResult, error) {
	b, err := json.Marshal(purgeMsg{Node: c.cfg.Name, Who: who, URLs: r.URLs, Keys: r.Keys, All: r.All, Soft: r.Soft})
	if err != nil {
		return PurgeResult{}, err
	}
	deadline := time.Now().Add(c.cfg.PurgeTimeout)
	ctx, cancel := context.WithDeadline(c.ctx, deadline)
	defer cancel()
	names := c.liveMembers()
	ack, err := c.js.Publish(ctx, purgeSubject, b)
	if err != nil {
		return PurgeResult{}, fmt.Errorf("cluster: the purge was not stored: %w", err)
	}
	seq := ack.Sequence
	missing := c.waitMembers(names, deadline, func(m *Member) bool { return m.PurgeSeq >= seq })
	res := PurgeResult{Seq: seq, Missing: missing}
	for _, n := range names {
		if !slices.Contains(missing, n) {
			res.Applied = append(res.Applied, n)
		}
	}
	c.mu.Lock()
	res.Objects = c.objects[seq]
	delete(c.objects, seq)
	c.mu.Unlock()
	return res, nil
}

// consumePurges starts applying purges from the one after the last
// applied here. With no record of one (a new node, or its Dir lost), or
// when the stream no longer holds the purges missed, the node
// soft-purges everything first.
func (c *Cluster) consumePurges(ctx context.Context, stream jetstream.Stream) error {
	info, err := stream.Info(ctx)
	if err != nil {
		return fmt.Errorf("purge stream: %w", err)
	}
	last, known := c.readSeq()
	switch {
	case !known:
		c.purgeEverything("no record of the last purge applied")
		last = info.State.LastSeq
	case last > info.State.LastSeq:
		c.purgeEverything(fmt.Sprintf("the purge stream was recreated (at %d, this node at %d)", info.State.LastSeq, last))
		last = info.State.LastSeq
	}
	c.setApplied(last)
	target := info.State.LastSeq
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: last + 1,
	})
	if err != nil {
		return fmt.Errorf("purge consumer: %w", err)
	}
	if c.applied.Load() >= target {
		c.markReady()
	}
	// Short pulls with frequent heartbeats: the consumer lives on one
	// server, and when that server goes, a missed heartbeat is what
	// makes the node recreate it on another.
	cc, err := cons.Consume(func(m jetstream.Msg) { c.applyMsg(m, target) },
		jetstream.PullExpiry(3*time.Second), jetstream.PullHeartbeat(time.Second))
	if err != nil {
		return fmt.Errorf("purge consumer: %w", err)
	}
	go func() {
		<-c.ctx.Done()
		cc.Stop()
	}()
	return nil
}

// applyMsg applies one purge from the stream. A sequence beyond the next
// one means the stream dropped purges this node did not apply: it
// soft-purges everything.
func (c *Cluster) applyMsg(m jetstream.Msg, target uint64) {
	md, err := m.Metadata()
	if err != nil {
		return
	}
	seq, last := md.Sequence.Stream, c.applied.Load()
	if seq <= last {
		return
	}
	if seq > last+1 {
		c.purgeEverything(fmt.Sprintf("purges %d to %d are no longer in the stream", last+1, seq-1))
	}
	var p purgeMsg
	if err := json.Unmarshal(m.Data(), &p); err != nil {
		c.log.Error("cluster: bad purge in the stream; purging everything softly", "seq", seq, "error", err)
		p = purgeMsg{All: true, Soft: true}
	}
	start := time.Now()
	res, err := c.host.Purge(edge.PurgeRequest{URLs: p.URLs, Keys: p.Keys, All: p.All, Soft: p.Soft})
	if err != nil {
		c.log.Error("cluster: purge failed here", "seq", seq, "from", p.Node, "error", err)
	}
	if p.Node == c.cfg.Name {
		// Before the sequence is marked applied: Purge, waiting on it,
		// reads the count as soon as it is.
		c.mu.Lock()
		c.objects[seq] = res.Objects
		c.mu.Unlock()
	}
	c.setApplied(seq)
	c.publishState(false)
	c.log.Info("purge", "who", p.Who, "via", p.Node, "seq", seq, "urls", strings.Join(p.URLs, " "),
		"keys", strings.Join(p.Keys, " "), "all", p.All, "soft", p.Soft, "objects", res.Objects,
		"took", time.Since(start).String())
	if seq >= target {
		c.markReady()
	}
}

// purgeEverything soft-purges the whole cache: purges were missed.
func (c *Cluster) purgeEverything(why string) {
	res, err := c.host.Purge(edge.PurgeRequest{All: true, Soft: true})
	c.log.Warn("cluster: soft-purged everything", "why", why, "objects", res.Objects, "error", err)
}

// PurgeEverything soft-purges the whole cache and marks the node ready:
// the node calls it when it could not replay the purges it missed before
// catch_up_timeout.
func (c *Cluster) PurgeEverything(why string) {
	c.purgeEverything(why)
	c.markReady()
}

func (c *Cluster) markReady() {
	c.mu.Lock()
	defer c.mu.Unlock()
	select {
	case <-c.ready:
	default:
		close(c.ready)
	}
}

// setApplied records seq as the last purge applied, in memory and in
// Dir (written whole: a crash leaves the old or the new).
func (c *Cluster) setApplied(seq uint64) {
	c.applied.Store(seq)
	tmp := c.seqFile() + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatUint(seq, 10)+"\n"), 0o600); err == nil {
		err = os.Rename(tmp, c.seqFile())
		if err == nil {
			return
		}
	}
	c.log.Error("cluster: cannot record the last purge applied; a restart will purge everything softly", "file", c.seqFile())
}

// readSeq reads the last purge applied, and whether there is a record.
func (c *Cluster) readSeq() (uint64, bool) {
	b, err := os.ReadFile(c.seqFile())
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			c.log.Error("cluster: cannot read the last purge applied", "error", err)
		}
		return 0, false
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return seq, err == nil
}
