package edge

import (
	"crypto/subtle"
	"io"
	"time"

	"github.com/outpost-edge/outpost/client"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/proxy"
)

// Sharder splits a site's cache between its nodes (see package cluster):
// each request's owner is one node, and a node that does not own a
// request it misses fills from the owner rather than from the origin, so
// that each object is fetched from the origin once per site.
type Sharder interface {
	// Owner returns the address of the node owning a request for host
	// and target, or "" when this node owns it (or knows no other).
	Owner(host, target []byte) string
	// PeerToken is the value of PeerHeader that marks a fill from a
	// peer; such a request is never sent to another peer.
	PeerToken() string
}

// PeerHeader carries the peer token on a fill from another node. It is
// removed before a request goes to an origin.
const PeerHeader = "X-Outpost-Peer"

// peerTransport is the connection pool to the other nodes. A slow owner
// is given up for the origin after peerFirstByte.
var peerTransport = &client.Transport{ConnectTimeout: time.Second, FirstByteTimeout: peerFirstByte}

const peerFirstByte = 5 * time.Second

// shardUpstream sends a route's misses to their owner first: attempt 0
// goes to the owner (when another node owns the request), the next ones
// are the route's upstream's own, starting from its first.
type shardUpstream struct {
	inner proxy.Upstream
	shard Sharder
}

// owner is the peer to fill from, or "": this node owns the request, it
// is not a GET or HEAD, or it comes from a peer already.
func (u *shardUpstream) owner(c *proxy.Ctx) string {
	req := c.Request
	if !req.IsMethod("GET") && !req.IsMethod("HEAD") || u.fromPeer(req) {
		return ""
	}
	return u.shard.Owner(req.Host, req.Target)
}

func (u *shardUpstream) fromPeer(req *httphead.Request) bool {
	got := req.Header.Peek(PeerHeader)
	return len(got) > 0 && subtle.ConstantTimeCompare(got, []byte(u.shard.PeerToken())) == 1
}

func (u *shardUpstream) Pick(c *proxy.Ctx, n int) (proxy.Peer, error) {
	a := attemptOf(c)
	if n == 0 {
		a.owner = u.owner(c)
		if a.owner != "" {
			c.Trace.Add("shard", "owner")
			return &ownerPeer{addr: a.owner, token: u.shard.PeerToken()}, nil
		}
	}
	if a.owner != "" {
		n--
	}
	return u.inner.Pick(c, n)
}

func (u *shardUpstream) Finish(c *proxy.Ctx, p proxy.Peer, n int, resp *httphead.Response, err error, took time.Duration) bool {
	a := attemptOf(c)
	if _, ok := p.(*ownerPeer); ok {
		if err != nil {
			// The owner is down or slow: the origin, as if unsharded.
			c.Trace.Add("shard", "owner-failed")
			return true
		}
		return false
	}
	if a.owner != "" {
		n--
	}
	return u.inner.Finish(c, p, n, resp, err, took)
}

// ownerPeer is the node owning a request.
type ownerPeer struct {
	addr, token string
}

func (p *ownerPeer) Addr() string { return p.addr }

// RoundTrip sends the request to the owner with the peer token, which
// is taken off again: a retry goes to an origin.
func (p *ownerPeer) RoundTrip(c *proxy.Ctx, req *httphead.Request, body io.Reader, resp *httphead.Response) (io.ReadCloser, error) {
	req.Header.Set(PeerHeader, p.token)
	defer req.Header.Del(PeerHeader)
	return peerTransport.RoundTrip(c, p.addr, req, body, resp)
}
