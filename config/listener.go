package config

import (
	"crypto/tls"
	"net/netip"
	"time"
)

// Listener is one public address that accepts client connections.
type Listener struct {
	// Addr is the host:port to listen on; an empty host or 0.0.0.0 or [::]
	// means every interface, port 0 an ephemeral port.
	// Default (also when empty): "127.0.0.1:8080".
	Addr string `yaml:"addr"`
	// TLS, when set, makes the listener speak HTTPS, offering h2 and
	// http/1.1 by ALPN. Default: nil, plain HTTP.
	TLS *ListenerTLS `yaml:"tls"`
	// H2C accepts cleartext HTTP/2 with prior knowledge on a plain
	// listener. Default: true; false serves HTTP/1.1 only.
	H2C bool `yaml:"h2c"`
	// HTTP3 serves HTTP/3 over QUIC on the same port (UDP) of a TLS
	// listener, with the same certificates, and advertises it with an
	// Alt-Svc field on the TCP listener's responses. 0-RTT is refused:
	// a replayed early request could repeat its effect. Default: false.
	// It needs TLS, and cannot go with ProxyProtocol (QUIC carries no
	// PROXY header).
	HTTP3 bool `yaml:"http3"`
	// ProxyProtocol expects a PROXY protocol v1 or v2 header at the start
	// of each connection and takes the client address from it.
	// Default: false. It needs ProxyProtocolFrom.
	ProxyProtocol bool `yaml:"proxy_protocol"`
	// ProxyProtocolFrom are the networks of the load balancers that send
	// PROXY headers; a single address means a /32 or /128. A connection
	// from any other peer is closed on arrival: the header names the
	// client that IP rules, rate limits and the PURGE allow-list judge,
	// so only a balancer may write it. Required (non-empty) with
	// ProxyProtocol; refused without it.
	ProxyProtocolFrom []netip.Prefix `yaml:"proxy_protocol_from"`
	// TrustedProxies are the networks whose X-Forwarded-For and Forwarded
	// headers are believed when finding the client address; a single
	// address means a /32 or /128. Default: empty, trust no one.
	TrustedProxies []netip.Prefix `yaml:"trusted_proxies"`
	// RedirectHTTPS makes a plain listener answer every request with a
	// 308 redirect to the same URL over https (to the port of the first
	// TLS listener), except the ACME HTTP-01 challenges of the node's
	// tls.acme listeners, which it answers. No route runs on it.
	// Default: false. Not with tls.
	RedirectHTTPS bool `yaml:"redirect_https"`
}

func (l *Listener) setDefaults() {
	l.Addr = "127.0.0.1:8080"
	l.H2C = true
}

// ListenerTLS is a listener's TLS termination.
type ListenerTLS struct {
	// Certs are the certificates offered. The one whose names match the
	// client's SNI is chosen; the first is used when none match or the
	// client sends no SNI. The files are read again when they change.
	// Exactly one of Certs and ACME is required.
	Certs []Certificate `yaml:"certs"`
	// ACME, when set, obtains the listener's certificates from an ACME
	// CA instead of Certs, and renews them. Default: nil.
	ACME *ACME `yaml:"acme"`
	// MinVersion is the lowest TLS version accepted, "1.2" or "1.3".
	// Default (also when zero): "1.2". Cipher suites and key exchange
	// are Go's defaults, with the hybrid post-quantum X25519MLKEM768
	// offered first to TLS 1.3 clients.
	MinVersion TLSVersion `yaml:"min_version"`
	// ClientCA is a PEM file of CAs; when set, clients are asked for a
	// certificate and one they present must chain to these CAs.
	// Default: "", no client certificates asked for.
	ClientCA string `yaml:"client_ca"`
}

func (t *ListenerTLS) setDefaults() { t.MinVersion = tls.VersionTLS12 }

// Certificate is a PEM certificate chain and its private key. An entry
// needs both, as paths of PEM files relative to the config file.
type Certificate struct {
	Cert string `yaml:"cert"` // PEM certificate chain, leaf first
	Key  string `yaml:"key"`  // PEM private key
}

// Admin is the authenticated admin API: purge, validate, reload, status.
// Every call but the health and version checks needs a bearer token.
type Admin struct {
	// Addr is the host:port of the admin API. Default: "127.0.0.1:9090";
	// "" turns the admin API off. An address other than loopback needs
	// TokenFile or TokenEnv.
	Addr string `yaml:"addr"`
	// TokenFile is a file holding the bearer tokens clients may send.
	// Default: "": with TokenEnv unset too, the node generates a token at
	// first start into a file of its state directory and reuses it
	// (see node.DefaultTokenFile).
	TokenFile string `yaml:"token_file"`
	// TokenEnv names an environment variable holding the bearer token,
	// e.g. OUTPOST_ADMIN_TOKEN. Default: "". At most one of TokenFile and
	// TokenEnv may be set.
	TokenEnv string `yaml:"token_env"`
	// Hosts are the names, besides localhost and IP addresses, that the
	// admin API answers in a request's Host; a request for another name is
	// refused with 421, so a web page cannot reach the API by pointing its
	// own name at the node (DNS rebinding). Default: none.
	Hosts []string `yaml:"hosts"`
	// FiddleDir is the directory the Fiddle at /fiddle/ saves fiddles in,
	// so that they outlive a restart: one file each (mode 0600) in a
	// directory of mode 0700, at most 1000 fiddles and 100 MiB. Default:
	// "", the "fiddles" directory of the node's state directory (next to
	// the generated admin token; see node.StateDir).
	FiddleDir string `yaml:"fiddle_dir"`
}

func (a *Admin) setDefaults() { a.Addr = "127.0.0.1:9090" }

// Timeouts bound how long a client connection may take over each part of
// its life. Zero means no limit.
type Timeouts struct {
	// Header is the time allowed to read a request head, from its first
	// byte. Default: 10s.
	Header time.Duration `yaml:"header"`
	// Idle is how long a keep-alive connection may wait for its next
	// request. Default: 60s.
	Idle time.Duration `yaml:"idle"`
	// Request is the time allowed for a whole exchange, head to last byte
	// of the response. Default: 0, no limit (large downloads).
	Request time.Duration `yaml:"request"`
	// BodyRead is the longest wait for the next bytes of a request body.
	// Default: 60s.
	BodyRead time.Duration `yaml:"body_read"`
	// Write is the longest wait for a client to accept response bytes.
	// Default: 60s.
	Write time.Duration `yaml:"write"`
	// BodyRateGrace is how long a request body may arrive slower than
	// limits.min_body_rate before that rate is enforced. Default: 10s.
	BodyRateGrace time.Duration `yaml:"body_rate_grace"`
	// TunnelIdle closes an upgraded connection (WebSocket), both sides,
	// once no byte has moved either way for this long. Default: 10m.
	TunnelIdle time.Duration `yaml:"tunnel_idle"`
}

func (t *Timeouts) setDefaults() {
	*t = Timeouts{Header: 10 * time.Second, Idle: 60 * time.Second,
		BodyRead: 60 * time.Second, Write: 60 * time.Second, BodyRateGrace: 10 * time.Second,
		TunnelIdle: 10 * time.Minute}
}

// Limits bound what one client may use.
type Limits struct {
	// MaxHeaderBytes is the largest request head accepted, request line
	// included, in bytes (from 1KiB to 1MiB). Default (also when zero):
	// 64KiB.
	MaxHeaderBytes Size `yaml:"max_header_bytes"`
	// MaxHeaders is the most header fields a request may carry (1 to
	// 10000). Default (also when zero): 100.
	MaxHeaders int `yaml:"max_headers"`
	// MaxBodyBytes is the largest request body accepted, in bytes.
	// Default: 0, no limit.
	MaxBodyBytes Size `yaml:"max_body_bytes"`
	// MaxConns is the most client connections open at once over all
	// listeners. Default: 0, no limit.
	MaxConns int `yaml:"max_conns"`
	// MaxConnsPerIP is the most connections open at once from one client
	// address. Default: 0, no limit.
	MaxConnsPerIP int `yaml:"max_conns_per_ip"`
	// MinBodyRate is the slowest average rate, in bytes per second, at
	// which a request body may arrive after timeouts.body_rate_grace
	// (slow POST defence: slower clients get 408). Default: 1KiB; 0 turns
	// the check off.
	MinBodyRate Size `yaml:"min_body_rate"`
}

func (l *Limits) setDefaults() {
	*l = Limits{MaxHeaderBytes: 64 << 10, MaxHeaders: 100, MinBodyRate: 1 << 10}
}
