package config

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"time"
)

// Cluster joins the node to other Outpost nodes over NATS (see package
// cluster): membership, purges that take effect on every node, and
// configs pushed to every node. With no name it is off: no NATS server is
// started and nothing of it runs. It cannot change while running.
type Cluster struct {
	// Name is this node's name, unique in the cluster. Default: "", the
	// cluster is off; every other cluster key then must be unset.
	Name string `yaml:"name"`
	// Site names the node's site (a data centre): sharding stays inside
	// one. Default: "default".
	Site string `yaml:"site"`
	// Role is what the node does for others: edge, or shield (the tier
	// edges fetch from: upstreams that name this node's site as their
	// shield send their misses to it, at PeerAddr). Default: edge.
	Role string `yaml:"role"`
	// Dir is where the node keeps its JetStream storage (embedded server)
	// and the sequence of the last purge it applied. Default: "",
	// cluster/NAME in the state directory ($XDG_STATE_HOME/outpost).
	Dir string `yaml:"dir"`
	// Listen is the address of the embedded NATS server's cluster port,
	// where the other nodes' servers connect (routes). Default: "". Exactly
	// one of Listen and URL is set.
	Listen string `yaml:"listen"`
	// Routes are the cluster ports (host:port) of the other nodes'
	// embedded servers. Default: none: a cluster of one node, whose
	// server opens no cluster port.
	Routes []string `yaml:"routes"`
	// URL is an external NATS server or cluster to use instead of an
	// embedded one ("nats://h1:4222,nats://h2:4222"; tls:// for TLS).
	// Default: "".
	URL string `yaml:"url"`
	// CredentialsFile is a NATS credentials file (JWT and NKey seed) for
	// URL. Default: "", none.
	CredentialsFile string `yaml:"credentials_file"`
	// SecretEnv names an environment variable holding the shared secret
	// (16 bytes or more): the password embedded servers require of each
	// other's routes, or the token sent to URL. Default: "", none: then
	// Listen must be a loopback address.
	SecretEnv string `yaml:"secret_env"`
	// JetStreamDomain is the JetStream domain holding the purge stream
	// and the config bucket, with URL: the hub's domain when the sites'
	// NATS servers are leaf nodes of a hub (a leaf node without
	// JetStream reaches the hub's only through its domain). Default: "",
	// the JetStream of the servers reached (one cluster, or a
	// supercluster joined by gateways).
	JetStreamDomain string `yaml:"jetstream_domain"`
	// TLS is the client TLS used with URL. Default: none, unless URL
	// says tls://.
	TLS ClusterTLS `yaml:"tls"`
	// Shard splits the cache between the nodes of the site with the
	// same role: each request has an owner (rendezvous hashing of host
	// and target), and a node that misses a request another owns fills
	// from the owner (peer fill, collapsed there) rather than from the
	// origin; an owner down or slow (5s to the first byte) is passed over
	// for the origin. Peer fills carry a token derived from the secret,
	// which is required. Default: false.
	Shard bool `yaml:"shard"`
	// PeerAddr is the host:port the other nodes reach this node's edge
	// at for peer fills, and edges reach a shield at. Default: "", the first listener's address.
	PeerAddr string `yaml:"peer_addr"`
	// Replicas is how many servers keep each JetStream message (purges,
	// configs). Default: 0, one per server named (Listen and Routes),
	// at most 3; 1 with URL.
	Replicas int `yaml:"replicas"`
	// PurgeTimeout is how long a purge (or a config push) waits for
	// every member up to apply it before answering with the members that
	// did not. Default: 2s.
	PurgeTimeout time.Duration `yaml:"purge_timeout"`
	// CatchUpTimeout is how long a starting node waits to replay the
	// purges it missed before it serves; past it, it soft-purges its
	// whole cache and serves. Default: 5s.
	CatchUpTimeout time.Duration `yaml:"catch_up_timeout"`
	// PurgeHistory is how many purges the stream keeps for nodes that
	// come back; a node further behind soft-purges everything. Default:
	// 100000.
	PurgeHistory int `yaml:"purge_history"`
}

// ClusterTLS is the client side of TLS to an external NATS.
type ClusterTLS struct {
	// CA is a PEM file of the CAs that sign the servers. Default: "", the
	// system roots.
	CA string `yaml:"ca"`
	// Cert and Key are a client certificate and its key (PEM). Default:
	// "", none.
	Cert string `yaml:"cert"`
	// Key is the client certificate's private key. Default: "".
	Key string `yaml:"key"`
}

// Enabled reports whether the node joins a cluster.
func (c *Cluster) Enabled() bool { return c.Name != "" }

func (c *Cluster) setDefaults() {
	*c = Cluster{Site: "default", Role: "edge", PurgeTimeout: 2 * time.Second,
		CatchUpTimeout: 5 * time.Second, PurgeHistory: 100000}
}

func (k *checker) provisionCluster() {
	c := &k.c.Cluster
	k.resolve(&c.Dir)
	k.resolve(&c.CredentialsFile)
	k.resolve(&c.TLS.CA)
	k.resolve(&c.TLS.Cert)
	k.resolve(&c.TLS.Key)
}

func (k *checker) cluster() {
	c := &k.c.Cluster
	if !c.Enabled() {
		if c.Listen != "" || c.URL != "" || len(c.Routes) > 0 {
			k.errorf("cluster.name", "is required to join a cluster")
		}
		return
	}
	if !nodeName.MatchString(c.Name) {
		k.errorf("cluster.name", "%q: want letters, digits, '-' and '_' (at most 64)", c.Name)
	}
	if !nodeName.MatchString(c.Site) {
		k.errorf("cluster.site", "%q: want letters, digits, '-' and '_' (at most 64)", c.Site)
	}
	k.oneOf("cluster.role", c.Role, "edge", "shield")
	switch {
	case (c.Listen == "") == (c.URL == ""):
		k.errorf("cluster.listen", "set listen (an embedded NATS server) or url (an external one), not both")
	case c.Listen != "":
		host, _, _ := k.hostPort("cluster.listen", c.Listen, true)
		if ip, err := netip.ParseAddr(host); c.SecretEnv == "" && host != "localhost" && (err != nil || !ip.IsLoopback()) {
			k.errorf("cluster.listen", "a cluster port on non-loopback address %s needs secret_env", c.Listen)
		}
		for i, r := range c.Routes {
			k.hostPort(fmt.Sprintf("cluster.routes[%d]", i), r, false)
		}
	default:
		if len(c.Routes) > 0 {
			k.errorf("cluster.routes", "routes are for an embedded server; with url, the NATS servers route")
		}
	}
	if c.JetStreamDomain != "" && c.URL == "" {
		k.errorf("cluster.jetstream_domain", "is for an external NATS (url); an embedded server has its own JetStream")
	}
	if c.SecretEnv != "" && !envName.MatchString(c.SecretEnv) {
		k.errorf("cluster.secret_env", "%q is not an environment variable name", c.SecretEnv)
	}
	k.file("cluster.credentials_file", c.CredentialsFile, false)
	k.file("cluster.tls.ca", c.TLS.CA, false)
	k.file("cluster.tls.cert", c.TLS.Cert, c.TLS.Key != "")
	k.file("cluster.tls.key", c.TLS.Key, c.TLS.Cert != "")
	k.intRange("cluster.replicas", c.Replicas, 0, 5)
	if c.Shard && c.SecretEnv == "" {
		k.errorf("cluster.shard", "sharding needs secret_env: peer fills are authenticated with it")
	}
	if c.PeerAddr != "" {
		k.hostPort("cluster.peer_addr", c.PeerAddr, true)
	}
	if c.PurgeTimeout <= 0 {
		k.errorf("cluster.purge_timeout", "must be positive")
	}
	if c.CatchUpTimeout < 0 {
		k.errorf("cluster.catch_up_timeout", "must not be negative")
	}
	if c.PurgeHistory < 1 {
		k.errorf("cluster.purge_history", "must be at least 1")
	}
}

// Members is how many NATS servers the cluster block names: this one and
// its routes (1 with an external URL).
func (c *Cluster) Members() int {
	if c.URL != "" {
		return 1
	}
	return 1 + len(c.Routes)
}

// ListenAddr splits Listen into host and port.
func (c *Cluster) ListenAddr() (string, int, error) {
	host, port, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return "", 0, err
	}
	p, err := strconv.Atoi(port)
	return host, p, err
}

// nodeName is what a node or site name may be: it is part of NATS
// subjects and server names.
var nodeName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// shield checks an upstream's shield: a site name, in a cluster.
func (k *checker) shield(key, site string) {
	switch {
	case site == "":
	case !k.c.Cluster.Enabled():
		k.errorf(key, "a shield is a site of the cluster: it needs a cluster block")
	case !nodeName.MatchString(site):
		k.errorf(key, "%q: want a site name: letters, digits, '-' and '_' (at most 64)", site)
	}
}
