package config

import "time"

// Protocol is the HTTP version spoken to an upstream.
type Protocol string

// Upstream protocols.
const (
	ProtocolHTTP1 Protocol = "http1" // HTTP/1.1, over TLS when tls.enabled
	ProtocolH2    Protocol = "h2"    // HTTP/2 over TLS (needs tls.enabled)
	ProtocolH2C   Protocol = "h2c"   // cleartext HTTP/2 with prior knowledge
)

// Balance is how an upstream picks a server for each request.
type Balance string

// Balancing policies.
const (
	BalanceRoundRobin   Balance = "round_robin"   // each server in turn
	BalanceWeighted     Balance = "weighted"      // in turn, in proportion to weight
	BalanceRandom       Balance = "random"        // uniformly at random
	BalanceHash         Balance = "hash"          // consistent hashing of hash_key
	BalanceLeastRequest Balance = "least_request" // fewest in flight of two random picks
	BalancePeakEWMA     Balance = "peak_ewma"     // lowest latency-weighted load of two random picks
)

// Upstream is a named group of origin servers and how to talk to them.
type Upstream struct {
	// Name is the upstream's key in the upstreams mapping, set by Provision.
	Name string `yaml:"-"`
	// Type is the kind of origin: http (the servers below, spoken to in
	// HTTP) or s3 (an S3-compatible bucket, described by S3; the server,
	// protocol, TLS, balancing and health settings do not apply).
	// Default (also when empty): http.
	Type string `yaml:"type"`
	// S3 is the bucket of a type s3 upstream. Required with type s3, not
	// allowed otherwise.
	S3 *S3Origin `yaml:"s3"`
	// Servers are the origin servers. Addr may be a DNS name. At least one
	// is required unless DNS.SRV discovers them.
	Servers []Server `yaml:"servers"`
	// DNS, when set, re-resolves server names periodically and may
	// discover servers from SRV records. Default: nil, names are resolved
	// when connecting.
	DNS *DNS `yaml:"dns"`
	// Protocol is the HTTP version spoken to the servers: http1, h2 or
	// h2c. Default (also when empty): http1.
	Protocol Protocol `yaml:"protocol"`
	// TLS configures TLS to the servers. Default: off.
	TLS UpstreamTLS `yaml:"tls"`
	// Balance is the server selection policy: round_robin, weighted,
	// random, hash, least_request or peak_ewma. Default (also when
	// empty): round_robin.
	Balance Balance `yaml:"balance"`
	// HashKey is what the hash policy hashes: url, client_ip,
	// header:NAME or cookie:NAME. Default (also when empty): url. Any
	// other key needs balance: hash.
	HashKey KeySource `yaml:"hash_key"`
	// StickyCookie, when set, names a cookie that pins a client to the
	// server that first answered it. Default: "", no stickiness.
	StickyCookie string `yaml:"sticky_cookie"`
	// ConnectTimeout bounds a TCP (and TLS) connect. Default: 5s; 0 means
	// no limit beyond the request's.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
	// FirstByteTimeout bounds the wait for the response head after the
	// request was sent. Default: 30s; 0 means no limit.
	FirstByteTimeout time.Duration `yaml:"first_byte_timeout"`
	// IdleTimeout is how long an unused pooled connection is kept.
	// Default: 90s; 0 means no limit.
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxIdlePerServer is the most idle connections pooled per server.
	// Default: 256; 0 disables pooling.
	MaxIdlePerServer int `yaml:"max_idle_per_server"`
	// MaxConnsPerServer is the most connections open to one server; more
	// requests wait. Default: 0, no limit.
	MaxConnsPerServer int `yaml:"max_conns_per_server"`
	// Health configures active health checks.
	Health Health `yaml:"health"`
	// Passive configures ejection of servers that fail live requests.
	Passive Passive `yaml:"passive"`
	// Retries configures retrying a failed request on another server.
	Retries Retries `yaml:"retries"`
	// Circuit bounds the requests in flight to the upstream as a whole.
	Circuit Circuit `yaml:"circuit"`
	// Failover sends requests to another upstream when this one fails.
	Failover Failover `yaml:"failover"`
	// Shield names the site of the cluster whose shield nodes (cluster
	// role shield) this upstream's cache misses go to instead of its
	// servers: a GET or HEAD miss of a cached route is sent to one shield
	// of that site, picked by rendezvous hashing of host and target (so
	// every edge asks the same shield for an object, the one that owns
	// it when the shields shard), and the shield fetches it from the
	// servers. With no shield of that site up, or a shield that fails to
	// answer, the miss goes to the servers. A node that is itself a
	// shield of that site goes to the servers. Needs a cluster block.
	// Default: "", no shield.
	Shield string `yaml:"shield"`
}

func (u *Upstream) setDefaults() {
	*u = Upstream{
		Type:             UpstreamHTTP,
		Protocol:         ProtocolHTTP1,
		Balance:          BalanceRoundRobin,
		HashKey:          KeySource{Kind: KeyURL},
		ConnectTimeout:   5 * time.Second,
		FirstByteTimeout: 30 * time.Second,
		IdleTimeout:      90 * time.Second,
		MaxIdlePerServer: 256,
	}
	u.TLS.setDefaults()
	u.Health.setDefaults()
	u.Passive.setDefaults()
	u.Retries.setDefaults()
}

// Server is one origin server of an upstream.
type Server struct {
	// Addr is host:port; host may be an IP address or a DNS name.
	// Required.
	Addr string `yaml:"addr"`
	// Weight is the server's share under the weighted policy and its
	// number of points on the hash ring (1 to 10000). Default: 1.
	Weight int `yaml:"weight"`
	// Backup servers get traffic only when no other server is healthy.
	// Default: false.
	Backup bool `yaml:"backup"`
}

func (s *Server) setDefaults() { s.Weight = 1 }

// DNS is periodic resolution and discovery of an upstream's servers.
type DNS struct {
	// Refresh is how often names are resolved again. Default: 30s; must
	// be positive.
	Refresh time.Duration `yaml:"refresh"`
	// SRV, when set, is an SRV name (e.g. "_http._tcp.origin.internal")
	// whose targets are added to Servers. Default: "".
	SRV string `yaml:"srv"`
}

func (d *DNS) setDefaults() { d.Refresh = 30 * time.Second }

// UpstreamTLS is TLS from Outpost to an upstream's servers.
type UpstreamTLS struct {
	// Enabled turns TLS on. Default: false.
	Enabled bool `yaml:"enabled"`
	// SNI is the server name sent and verified. Default: "", the host
	// part of each server's Addr.
	SNI string `yaml:"sni"`
	// Verify checks the server's certificate chain and name. Default:
	// true; false accepts any certificate.
	Verify bool `yaml:"verify"`
	// CA is a PEM file of CAs to verify against. Default: "", the system
	// roots.
	CA string `yaml:"ca"`
	// ClientCert and ClientKey are PEM files presented for mutual TLS;
	// both or neither. Default: "", no client certificate.
	ClientCert string `yaml:"client_cert"`
	ClientKey  string `yaml:"client_key"` // see ClientCert
}

func (t *UpstreamTLS) setDefaults() { t.Verify = true }

// Health is an upstream's active health check, run against each server.
// It is off unless Path or TCP is set.
type Health struct {
	// Path is the URL path requested with GET, e.g. "/healthz".
	// Default: "", no HTTP check.
	Path string `yaml:"path"`
	// TCP checks only that a connection opens; not together with Path.
	// Default: false.
	TCP bool `yaml:"tcp"`
	// ExpectStatus is the range of statuses that count as healthy.
	// Default (also when unset): "200-399".
	ExpectStatus StatusRange `yaml:"expect_status"`
	// Interval is the time between checks of a server. Default: 5s;
	// must be positive.
	Interval time.Duration `yaml:"interval"`
	// Timeout bounds one check. Default: 2s; must be positive and no
	// longer than Interval.
	Timeout time.Duration `yaml:"timeout"`
	// Rise is how many passes in a row make a server healthy. Default: 2;
	// at least 1.
	Rise int `yaml:"rise"`
	// Fall is how many failures in a row make a server unhealthy.
	// Default: 3; at least 1.
	Fall int `yaml:"fall"`
}

func (h *Health) setDefaults() {
	*h = Health{ExpectStatus: StatusRange{200, 399}, Interval: 5 * time.Second,
		Timeout: 2 * time.Second, Rise: 2, Fall: 3}
}

// Enabled reports whether active checks are configured.
func (h *Health) Enabled() bool { return h.Path != "" || h.TCP }

// Passive ejects servers that fail live requests.
type Passive struct {
	// ConsecutiveFailures is how many failed requests in a row eject a
	// server. Default: 5; 0 turns passive ejection off.
	ConsecutiveFailures int `yaml:"consecutive_failures"`
	// EjectTime is how long an ejected server is left out. Default: 10s.
	EjectTime time.Duration `yaml:"eject_time"`
	// MaxEjectedPercent caps the share of servers ejected at once (0 to
	// 100). Default: 50.
	MaxEjectedPercent int `yaml:"max_ejected_percent"`
}

func (p *Passive) setDefaults() {
	*p = Passive{ConsecutiveFailures: 5, EjectTime: 10 * time.Second, MaxEjectedPercent: 50}
}

// Retries retries a failed request on another server.
type Retries struct {
	// Max is the most retries per request (0 to 10). Default: 2; 0
	// turns retries off.
	Max int `yaml:"max"`
	// BudgetRatio caps retries at this fraction of recent requests to
	// the upstream (0 to 1), so retries cannot multiply an outage.
	// Default: 0.2; 0 means no cap.
	BudgetRatio float64 `yaml:"budget_ratio"`
	// On lists what is retried: "connect" (connection failed), "reset"
	// (connection reset before a response), "timeout" (first byte
	// timeout) and status codes. Default: [connect, reset, 502, 503, 504].
	On []string `yaml:"on"`
	// IdempotentOnly limits retries of failures after the request was
	// sent to idempotent methods. Default: true.
	IdempotentOnly bool `yaml:"idempotent_only"`
	// RetryWithBody allows retrying requests with a body, which must then
	// be buffered. Default: false.
	RetryWithBody bool `yaml:"retry_with_body"`

	// Conditions is On compiled by Provision.
	Conditions RetryConditions `yaml:"-"`
}

func (r *Retries) setDefaults() {
	*r = Retries{Max: 2, BudgetRatio: 0.2, On: []string{"connect", "reset", "502", "503", "504"},
		IdempotentOnly: true}
}

// RetryConditions is Retries.On in a form cheap to test per request.
type RetryConditions struct {
	Connect  bool  // retry when the connection could not be opened
	Reset    bool  // retry when the connection broke before a response head
	Timeout  bool  // retry when the first byte timeout expired
	Statuses []int // retry on these response statuses, in the order written
}

// Circuit bounds the load sent to an upstream as a whole.
type Circuit struct {
	// MaxConcurrent is the most requests in flight to the upstream; more
	// wait in the pending queue. Default: 0, no limit.
	MaxConcurrent int `yaml:"max_concurrent"`
	// MaxPending is the most requests waiting for a slot; more fail with
	// 503 at once. Default: 0, no limit.
	MaxPending int `yaml:"max_pending"`
}

// Failover sends a request to another upstream when this one fails.
type Failover struct {
	// BackupUpstream names the upstream to try when no server of this one
	// can be used or a status in OnStatus comes back. Default: "", none.
	BackupUpstream string `yaml:"backup_upstream"`
	// OnStatus lists response statuses that send the request to
	// BackupUpstream, e.g. [404] for a mirror. Default: empty, fail over
	// only when no server is usable.
	OnStatus []int `yaml:"on_status"`
}
