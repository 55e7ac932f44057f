package cluster

import (
	"encoding/json"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
)

// Member is one node's state as it announces it.
type Member struct {
	Name string `json:"name"`
	Site string `json:"site"`
	Role string `json:"role"`
	// Edge and Admin are the node's public and admin addresses.
	Edge  []string `json:"edge"`
	Admin string   `json:"admin,omitempty"`
	// Peer is where the other nodes of the site fill from this one when
	// it shards; "" when it does not.
	Peer string `json:"peer,omitempty"`
	// Shield is where edges of any site fetch from this node when its
	// role is shield (its peer address); "" for an edge.
	Shield string `json:"shield,omitempty"`
	// Health is ok, catching_up (replaying missed purges) or draining.
	Health string `json:"health"`
	// ConfigVersion is the pushed config revision the node runs; 0 for
	// its own file. ConfigRefused and ConfigError name the last revision
	// it refused, and why.
	ConfigVersion uint64 `json:"config_version"`
	ConfigRefused uint64 `json:"config_refused,omitempty"`
	ConfigError   string `json:"config_error,omitempty"`
	// PurgeSeq is the stream sequence of the last purge it applied.
	PurgeSeq uint64    `json:"purge_seq"`
	Started  time.Time `json:"started"`
	// Leaving is set in the last message of a node that shuts down.
	Leaving bool `json:"leaving,omitempty"`

	// Seen and Up are filled by the receiving node.
	Seen time.Time `json:"last_seen"`
	Up   bool      `json:"up"`
}

// Status is what GET /cluster answers.
type Status struct {
	Self  string `json:"self"`
	Ready bool   `json:"ready"`
	// Replicas is how many servers keep each purge (0 until the purge
	// stream is reached); it grows to cluster.replicas as members come.
	Replicas int      `json:"replicas"`
	Members  []Member `json:"members"`
}

// self is this node's state now.
func (c *Cluster) self() Member {
	m := Member{Name: c.cfg.Name, Site: c.cfg.Site, Role: c.cfg.Role, Health: "ok",
		ConfigVersion: c.cfgVersion.Load(), ConfigRefused: c.cfgFailed.Load(),
		PurgeSeq: c.applied.Load(), Started: c.started}
	if e := c.cfgError.Load(); e != nil {
		m.ConfigError = *e
	}
	c.host.Describe(&m)
	if c.cfg.Role == "shield" {
		m.Shield = m.Peer
	}
	if !c.cfg.Shard {
		m.Peer = ""
	}
	if m.Health == "ok" && !c.isReady() {
		m.Health = "catching_up"
	}
	return m
}

func (c *Cluster) isReady() bool {
	select {
	case <-c.ready:
		return true
	default:
		return false
	}
}

// announce publishes this node's state every heartbeat.
func (c *Cluster) announce() {
	defer c.wg.Done()
	t := time.NewTicker(heartbeat)
	defer t.Stop()
	for {
		c.publishState(false)
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
	}
}

// publishState announces this node's state (and that it leaves).
func (c *Cluster) publishState(leaving bool) {
	m := c.self()
	m.Leaving = leaving
	b, err := json.Marshal(m)
	if err != nil {
		return
	}
	_ = c.nc.Publish(memberSubject+c.cfg.Name, b)
}

// heard records a member's state.
func (c *Cluster) heard(msg *nats.Msg) {
	var m Member
	if err := json.Unmarshal(msg.Data, &m); err != nil || m.Name == "" {
		return
	}
	m.Seen = time.Now()
	c.mu.Lock()
	c.members[m.Name] = &m
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Status lists the members, this node first, then by name.
func (c *Cluster) Status() Status {
	self := c.self()
	self.Seen, self.Up = time.Now(), true
	st := Status{Self: c.cfg.Name, Ready: c.isReady(), Replicas: int(c.streamReplicas.Load()), Members: []Member{self}}
	c.mu.Lock()
	for name, m := range c.members {
		if name != c.cfg.Name {
			o := *m
			o.Up = up(&o, time.Now())
			st.Members = append(st.Members, o)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(st.Members[1:], func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return st
}

// up reports whether m is a live member.
func up(m *Member, now time.Time) bool { return !m.Leaving && now.Sub(m.Seen) < downAfter }

// liveMembers names the members up now, this node included.
func (c *Cluster) liveMembers() []string {
	names := []string{c.cfg.Name}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if name != c.cfg.Name && up(m, now) {
			names = append(names, name)
		}
	}
	return names
}

// waitMembers waits until done holds for every member named (this node's
// own state read fresh), or until deadline; it returns those for which
// it does not.
func (c *Cluster) waitMembers(names []string, deadline time.Time, done func(*Member) bool) []string {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		self := c.self()
		var missing []string
		c.mu.Lock()
		for _, name := range names {
			m := c.members[name]
			if name == c.cfg.Name {
				m = &self
			}
			if m == nil || !done(m) {
				missing = append(missing, name)
			}
		}
		changed := c.changed
		c.mu.Unlock()
		if len(missing) == 0 {
			return nil
		}
		select {
		case <-changed:
		case <-timer.C:
			return missing
		}
	}
}
