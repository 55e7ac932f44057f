package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"time"
)

// Owner picks the node owning a request for host and target among the
// members up of this node's site and role that shard, by rendezvous
// hashing: each node scores the key, the highest score owns it, so a
// node that comes or goes moves about 1/N of the keys. It returns the
// owner's peer address, or "" when this node owns it. A node that is
// not serving normally (catching up, draining) owns nothing, as the
// others see it.
func (c *Cluster) Owner(host, target []byte) string {
	key := fnv(fnv(fnvOffset, host), target)
	best, bestAddr := uint64(0), ""
	if c.isReady() && !c.host.Draining() {
		best = score(c.cfg.Name, key)
	}
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if name == c.cfg.Name || m.Peer == "" || m.Site != c.cfg.Site || m.Role != c.cfg.Role || m.Health != "ok" || !up(m, now) {
			continue
		}
		if s := score(name, key); s > best || s == best && name < c.cfg.Name {
			best, bestAddr = s, m.Peer
		}
	}
	return bestAddr
}

// Shield picks the shield of site for a request for host and target
// among the members up with role shield there, by the rendezvous hashing
// of Owner: shields that shard agree with the edges on the owner. It
// returns the shield's address, or "" when no shield is up, or when this
// node is a shield of that site itself (it fetches from the origin).
func (c *Cluster) Shield(site string, host, target []byte) string {
	if c.cfg.Role == "shield" && c.cfg.Site == site {
		return ""
	}
	key := fnv(fnv(fnvOffset, host), target)
	best, bestName, bestAddr := uint64(0), "", ""
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	for name, m := range c.members {
		if name == c.cfg.Name || m.Shield == "" || m.Site != site || m.Role != "shield" || m.Health != "ok" || !up(m, now) {
			continue
		}
		if s := score(name, key); bestAddr == "" || s > best || s == best && name < bestName {
			best, bestName, bestAddr = s, name, m.Shield
		}
	}
	return bestAddr
}

// PeerToken marks a fill from a peer: derived from the cluster secret,
// which itself is never sent.
func (c *Cluster) PeerToken() string { return c.peerToken }

// peerTokenOf derives the peer token from the cluster secret.
func peerTokenOf(secret string) string {
	sum := sha256.Sum256([]byte("outpost peer fill\x00" + secret))
	return hex.EncodeToString(sum[:])
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// fnv folds b into the 64-bit FNV-1a hash h.
func fnv(h uint64, b []byte) uint64 {
	for _, x := range b {
		h ^= uint64(x)
		h *= fnvPrime
	}
	return h
}

// score is node name's weight for key (mixed so that close keys spread).
func score(name string, key uint64) uint64 {
	h := fnv(key, []byte(name))
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}
