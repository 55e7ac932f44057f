package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// badConfigs are configs that must fail, each with the exact error text
// Parse returns. They are parsed as testdata/bad.yaml, so that relative
// files resolve in testdata, and the error text is shown with the file
// name shortened to bad.yaml.
var badConfigs = []struct {
	name string
	yaml string
	want string
}{
	{"unknown top-level key",
		"listners: []\n",
		`bad.yaml:1: listners: unknown key (did you mean "listeners"?)`},
	{"unknown nested key",
		"routes:\n  - upstream: o\n    cach: {enabled: false}\nupstreams: {o: {servers: [{addr: 'a:1'}]}}\n",
		`bad.yaml:3: routes[0].cach: unknown key (did you mean "cache"?)`},
	{"unknown key in protection",
		"protection:\n  bots: on\n",
		`bad.yaml:2: protection.bots: unknown key`},
	{"duplicate key",
		"log:\n  level: info\n  level: debug\n",
		`bad.yaml:3: log.level: duplicate key (first at line 2)`},
	{"duplicate route names",
		"upstreams: {o: {servers: [{addr: 'a:1'}]}}\nroutes:\n  - {name: pkg, upstream: o, match: {path_prefix: /a/}}\n  - {name: pkg, upstream: o}\n",
		`bad.yaml:4: routes[1].name: duplicate route name "pkg" (also routes[0])`},
	{"route after a catch-all route",
		"upstreams: {o: {servers: [{addr: 'a:1'}]}}\nroutes:\n  - {name: all, upstream: o}\n  - {name: pkg, upstream: o, match: {path_prefix: /a/}}\n  - {name: more, upstream: o}\n",
		`bad.yaml:4: routes[1]: can never match: routes[0] ("all") before it matches every request`},
	{"bad duration",
		"timeouts:\n  header: 10\n  idle: 5 minutes\n",
		"bad.yaml:2: timeouts.header: bad duration \"10\": want a duration such as 90s, 1.5s, 10m or 1d\n" +
			`bad.yaml:3: timeouts.idle: bad duration "5 minutes": want a duration such as 90s, 1.5s, 10m or 1d`},
	{"negative duration",
		"timeouts: {write: -1s}\n",
		`bad.yaml:1: timeouts.write: duration "-1s" must not be negative`},
	{"bad size",
		"storage:\n  memory: {size: 12 parsecs}\n",
		`bad.yaml:2: storage.memory.size: bad size "12 parsecs": want bytes or a number with a unit such as 64KiB, 256MiB, 10MB`},
	{"missing upstream reference",
		"upstreams:\n  origin: {servers: [{addr: 'a:1'}]}\nroutes:\n  - name: x\n    upstream: orign\n",
		`bad.yaml:5: routes[0].upstream: unknown upstream "orign" (did you mean "origin"?)`},
	{"route without upstream or respond",
		"routes:\n  - name: x\n",
		`bad.yaml:2: routes[0]: needs an upstream or a respond`},
	{"route with both upstream and respond",
		"upstreams: {o: {servers: [{addr: 'a:1'}]}}\nroutes:\n  - upstream: o\n    respond: {status: 204}\n",
		`bad.yaml:3: routes[0]: set either upstream or respond, not both`},
	{"wrong type for a list",
		"listeners: 127.0.0.1:80\n",
		`bad.yaml:1: listeners: expected a list, got "127.0.0.1:80"`},
	{"wrong type for a mapping",
		"admin: [a]\n",
		`bad.yaml:1: admin: expected a mapping, got a list`},
	{"wrong type for a bool",
		"listeners: [{h2c: yes}]\n",
		`bad.yaml:1: listeners[0].h2c: expected true or false, got "yes"`},
	{"wrong type for an integer",
		"limits: {max_headers: many}\n",
		`bad.yaml:1: limits.max_headers: expected an integer, got "many"`},
	{"negative integer",
		"limits: {max_conns: -1}\n",
		`bad.yaml:1: limits.max_conns: must not be negative, got -1`},
	{"top level not a mapping",
		"- a\n",
		`bad.yaml:1: expected a mapping at the top level, got a list`},
	{"YAML syntax error",
		"log:\n  level: [info\n",
		`bad.yaml:2: did not find expected ',' or ']'`},
	{"two documents",
		"log: {level: info}\n---\nlog: {level: debug}\n",
		`bad.yaml:2: only one YAML document is allowed`},
	{"no listeners",
		"listeners: []\n",
		`bad.yaml:1: listeners: at least one listener is required`},
	{"listener address conflict",
		"listeners:\n  - addr: 127.0.0.1:8080\n  - addr: :8080\n",
		`bad.yaml:3: listeners[1].addr: address :8080 conflicts with listeners[0] (127.0.0.1:8080)`},
	{"admin address conflicts with a listener",
		"listeners: [{addr: '0.0.0.0:9090'}]\n",
		`bad.yaml: admin.addr: address 127.0.0.1:9090 conflicts with listeners[0] (0.0.0.0:9090)`},
	{"bad listen port",
		"listeners: [{addr: 'localhost:http'}]\n",
		`bad.yaml:1: listeners[0].addr: bad port "http" in "localhost:http": want 0 to 65535`},
	{"TLS without certificates",
		"listeners:\n  - tls: {min_version: '1.3'}\n",
		`bad.yaml:2: listeners[0].tls.certs: at least one certificate is required`},
	{"TLS certificate file missing",
		"listeners:\n  - tls:\n      certs:\n        - cert: missing.pem\n          key: key.pem\n",
		`bad.yaml:4: listeners[0].tls.certs[0].cert: file ` + abs("testdata/missing.pem") + ` does not exist`},
	{"TLS certificate without key",
		"listeners:\n  - tls:\n      certs: [{cert: cert.pem}]\n",
		`bad.yaml:3: listeners[0].tls.certs[0].key: is required`},
	{"bad TLS version",
		"listeners: [{tls: {certs: [{cert: cert.pem, key: key.pem}], min_version: 1.1}}]\n",
		`bad.yaml:1: listeners[0].tls.min_version: bad TLS version "1.1": want 1.2 or 1.3`},
	{"bad CIDR",
		"listeners:\n  - trusted_proxies: [10.0.0.0/33]\n",
		`bad.yaml:2: listeners[0].trusted_proxies[0]: bad CIDR "10.0.0.0/33": want an address or a prefix such as 10.0.0.0/8`},
	{"public admin without token",
		"admin: {addr: '0.0.0.0:9090'}\n",
		`bad.yaml:1: admin.addr: admin API on non-loopback address 0.0.0.0:9090 needs token_file or token_env`},
	{"public cluster port without secret",
		"cluster:\n  name: n1\n  listen: 0.0.0.0:7181\n",
		`bad.yaml:3: cluster.listen: a cluster port on non-loopback address 0.0.0.0:7181 needs secret_env`},
	{"cluster without a name",
		"cluster: {url: 'nats://127.0.0.1:4222'}\n",
		`bad.yaml:1: cluster.name: is required to join a cluster`},
	{"cluster with an embedded server and a URL",
		"cluster: {name: n1, listen: '127.0.0.1:7181', url: 'nats://127.0.0.1:4222'}\n",
		`bad.yaml:1: cluster.listen: set listen (an embedded NATS server) or url (an external one), not both`},
	{"shield outside a cluster",
		"upstreams:\n  origin:\n    servers: [{addr: '127.0.0.1:8080'}]\n    shield: core\n",
		`bad.yaml:4: upstreams.origin.shield: a shield is a site of the cluster: it needs a cluster block`},
	{"shield that is not a site name",
		"cluster: {name: n1, url: 'nats://127.0.0.1:4222'}\nupstreams:\n  origin:\n    servers: [{addr: '127.0.0.1:8080'}]\n    shield: 'core 1'\n",
		`bad.yaml:5: upstreams.origin.shield: "core 1": want a site name: letters, digits, '-' and '_' (at most 64)`},
	{"JetStream domain with an embedded server",
		"cluster: {name: n1, listen: '127.0.0.1:7181', jetstream_domain: hub}\n",
		`bad.yaml:1: cluster.jetstream_domain: is for an external NATS (url); an embedded server has its own JetStream`},
	{"admin with two tokens",
		"admin: {token_file: admin.token, token_env: TOKEN}\n",
		`bad.yaml:1: admin.token_env: set token_file or token_env, not both`},
	{"header limit out of range",
		"limits: {max_header_bytes: 100MiB}\n",
		`bad.yaml:1: limits.max_header_bytes: must be from 1KiB to 1MiB, got 100MiB`},
	{"upstream without servers",
		"upstreams:\n  origin: {protocol: http1}\n",
		`bad.yaml:2: upstreams.origin.servers: at least one server (or dns.srv) is required`},
	{"server address without port",
		"upstreams:\n  origin:\n    servers: [{addr: origin.internal}]\n",
		`bad.yaml:3: upstreams.origin.servers[0].addr: bad address "origin.internal": want host:port`},
	{"duplicate server",
		"upstreams:\n  o:\n    servers:\n      - addr: a:1\n      - addr: a:1\n",
		`bad.yaml:5: upstreams.o.servers[1].addr: duplicate server a:1 (also servers[0])`},
	{"unknown balance policy",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    balance: fastest\n",
		`bad.yaml:4: upstreams.o.balance: unknown value "fastest": want round_robin, weighted, random, hash, least_request, peak_ewma`},
	{"misspelt balance policy",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    balance: roundrobin\n",
		`bad.yaml:4: upstreams.o.balance: unknown value "roundrobin": want round_robin, weighted, random, hash, least_request, peak_ewma (did you mean "round_robin"?)`},
	{"hash key without hash balancing",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    hash_key: client_ip\n",
		`bad.yaml:4: upstreams.o.hash_key: is used only with balance: hash`},
	{"health check both HTTP and TCP",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    health: {path: /hc, tcp: true}\n",
		`bad.yaml:4: upstreams.o.health.tcp: set path (an HTTP check) or tcp, not both`},
	{"body on a 204",
		"routes:\n  - respond:\n      status: 204\n      body: nothing\n",
		`bad.yaml:4: routes[0].respond.body: a 204 response has no body`},
	{"bad token variable",
		"admin: {token_env: $TOKEN}\n",
		`bad.yaml:1: admin.token_env: "$TOKEN" is not an environment variable name`},
	{"rate limit key used as hash key",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    balance: hash\n    hash_key: route\n",
		`bad.yaml:5: upstreams.o.hash_key: "route" cannot be a hash key: want url, client_ip, header:NAME or cookie:NAME`},
	{"h2 without TLS",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    protocol: h2\n",
		`bad.yaml:4: upstreams.o.protocol: h2 needs tls.enabled (use h2c for cleartext HTTP/2)`},
	{"client certificate without key",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    tls: {enabled: true, client_cert: cert.pem}\n",
		`bad.yaml:4: upstreams.o.tls: client_cert and client_key go together`},
	{"health timeout longer than interval",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    health: {path: /hc, interval: 1s, timeout: 2s}\n",
		`bad.yaml:4: upstreams.o.health.timeout: must be positive and at most interval (1s)`},
	{"bad expected status",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    health: {expect_status: 300-200}\n",
		`bad.yaml:4: upstreams.o.health.expect_status: bad status range "300-200": want codes from 100 to 599 such as 200-399 or 204`},
	{"unknown retry condition",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    retries:\n      on: [connect, 5xx]\n",
		`bad.yaml:5: upstreams.o.retries.on[1]: unknown retry condition "5xx": want connect, reset, timeout or a status code`},
	{"retry budget over one",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    retries: {budget_ratio: 1.5}\n",
		`bad.yaml:4: upstreams.o.retries.budget_ratio: must be from 0 to 1, got 1.5`},
	{"failover to a missing upstream",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    failover:\n      backup_upstream: mirror\n",
		`bad.yaml:5: upstreams.o.failover.backup_upstream: unknown upstream "mirror"`},
	{"failover to itself",
		"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    failover: {backup_upstream: o}\n",
		`bad.yaml:4: upstreams.o.failover.backup_upstream: an upstream cannot be its own backup`},
	{"null upstream",
		"upstreams:\n  o:\n",
		`bad.yaml:2: upstreams.o: must not be null`},
	{"two path conditions",
		"routes:\n  - respond: {}\n    match:\n      path_prefix: /a\n      path_exact: /a/b\n",
		`bad.yaml:5: routes[0].match.path_exact: only one of path_prefix, path_exact, path_pattern and path_regex may be set`},
	{"bad path regex",
		"routes:\n  - respond: {}\n    match: {path_regex: '/a/(b'}\n",
		"bad.yaml:3: routes[0].match.path_regex: bad regular expression: missing closing ): `/a/(b`"},
	{"relative path prefix",
		"routes:\n  - respond: {}\n    match: {path_prefix: a/}\n",
		`bad.yaml:3: routes[0].match.path_prefix: must start with /`},
	{"bad host name",
		"routes:\n  - respond: {}\n    match:\n      hosts: [example.org, 'a b.org']\n",
		`bad.yaml:4: routes[0].match.hosts[1]: bad host name "a b.org": want a name, an IP address or *.domain`},
	{"bad header name",
		"routes:\n  - respond: {}\n    headers:\n      response_set: {'X Bad': 1}\n",
		`bad.yaml:4: routes[0].headers.response_set["X Bad"]: "X Bad" is not a valid header name`},
	{"bad respond status",
		"routes:\n  - respond: {status: 1000}\n",
		`bad.yaml:2: routes[0].respond.status: must be from 100 to 599, got 1000`},
	{"min TTL above max TTL",
		"routes:\n  - respond: {}\n    cache: {min_ttl: 1d, max_ttl: 1h}\n",
		`bad.yaml:3: routes[0].cache.min_ttl: must not exceed max_ttl (1h0m0s)`},
	{"query list without parameters",
		"routes:\n  - respond: {}\n    cache:\n      key: {query: list}\n",
		`bad.yaml:4: routes[0].cache.key.query_params: query: list needs at least one parameter`},
	{"rate limit without rate",
		"routes:\n  - respond: {}\n    rate_limits:\n      - key: client_ip\n",
		`bad.yaml:4: routes[0].rate_limits[0].rate: must be positive`},
	{"rate limit with a bad key",
		"routes:\n  - respond: {}\n    rate_limits:\n      - {key: 'header:', rate: 1}\n",
		`bad.yaml:4: routes[0].rate_limits[0].key: key "header:" needs a name after the colon, as in header:NAME`},
	{"rate limit with a hash-only key",
		"routes:\n  - respond: {}\n    rate_limits:\n      - {key: url, rate: 1}\n",
		`bad.yaml:4: routes[0].rate_limits[0].key: "url" cannot be a rate limit key: want client_ip, ipv6_64, header:NAME, route or expr:SOURCE`},
	{"disk tier without size",
		"storage:\n  disk: {path: /var/cache/outpost}\n",
		`bad.yaml:2: storage.disk.size: must be positive when path is set`},
	{"unknown log format",
		"log: {format: xml}\n",
		`bad.yaml:1: log.format: unknown value "xml": want json, text`},
	{"bad merge value",
		"log:\n  <<: [a]\n",
		`bad.yaml:2: log: a merge key (<<) needs a mapping or a list of mappings, got "a"`},
	{"errors from decoding and validation together, by line",
		"routes:\n  - upstream: nowhere\n    cache: {default_ttl: forever}\nlimits: {max_headers: 20000}\n",
		"bad.yaml:2: routes[0].upstream: unknown upstream \"nowhere\"\n" +
			"bad.yaml:3: routes[0].cache.default_ttl: bad duration \"forever\": want a duration such as 90s, 1.5s, 10m or 1d\n" +
			"bad.yaml:4: limits.max_headers: must be from 1 to 10000, got 20000"},
}

func abs(path string) string {
	p, err := filepath.Abs(path)
	if err != nil {
		panic(err)
	}
	return p
}

func TestParseReportsEveryProblemWithFileLineAndKey(t *testing.T) {
	expectParseErrors(t, badConfigs)
}

// expectParseErrors parses each config as testdata/bad.yaml and checks
// the exact error text (file name shortened to bad.yaml) and its type.
func expectParseErrors(t *testing.T, cases []struct{ name, yaml, want string }) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("testdata/bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error:\n%s", tt.want)
			}
			if got := strings.ReplaceAll(err.Error(), "testdata/bad.yaml", "bad.yaml"); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
			var cerr *Error
			if !errors.As(err, &cerr) {
				t.Errorf("error %T does not hold a *Error", err)
			}
		})
	}
}

func TestFullConfigDecodesEverySetting(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l := c.Listeners[0]
	if l.TLS == nil || l.TLS.MinVersion != tls.VersionTLS13 || l.TLS.Certs[0].Cert != abs("testdata/cert.pem") || l.H2C || !l.ProxyProtocol {
		t.Errorf("listeners[0] = %+v, TLS %+v", l, l.TLS)
	}
	wantProxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("192.168.1.7/32"), netip.MustParsePrefix("2001:db8::/32")}
	if !reflect.DeepEqual(l.TrustedProxies, wantProxies) {
		t.Errorf("trusted_proxies = %v, want %v", l.TrustedProxies, wantProxies)
	}
	if l := c.Listeners[1]; !l.H2C || l.TLS != nil {
		t.Errorf("listeners[1] did not keep its defaults: %+v", l)
	}
	if c.Timeouts.Idle != 2*time.Minute || c.Limits.MaxBodyBytes != 10_000_000 || c.Limits.MaxHeaderBytes != 32<<10 {
		t.Errorf("timeouts %+v limits %+v", c.Timeouts, c.Limits)
	}
	o := c.Upstreams["origin"]
	if o.Name != "origin" || o.HashKey != (KeySource{KeyHeader, "X-Project"}) || o.Servers[1].Weight != 1 || !o.Servers[2].Backup {
		t.Errorf("origin = %+v", o)
	}
	wantRetry := RetryConditions{Connect: true, Timeout: true, Statuses: []int{503}}
	if !reflect.DeepEqual(o.Retries.Conditions, wantRetry) || o.Retries.IdempotentOnly {
		t.Errorf("retries = %+v, want conditions %+v", o.Retries, wantRetry)
	}
	if o.Health.ExpectStatus != (StatusRange{200, 299}) || !o.Health.Enabled() {
		t.Errorf("health = %+v", o.Health)
	}
	if m := c.Upstreams["mirror"]; m.Passive.ConsecutiveFailures != 5 || m.Retries.Max != 2 || !m.TLS.Verify {
		t.Errorf("mirror did not keep its defaults: %+v", m)
	}
	r := c.Routes[0]
	if r.Match.Hosts[1] != "*.example.org" || r.Cache.DefaultTTL != 365*24*time.Hour || r.Cache.OverrideTTL != 36*time.Hour ||
		r.Cache.MaxObjectSize != 1<<30 || r.Cache.HitForPassTTL != 0 || r.Cache.Key.Host {
		t.Errorf("routes[0] = %+v", r)
	}
	if got := []string{c.Routes[2].Name, c.Routes[3].Name}; got[0] != "route2" || got[1] != "route3" {
		t.Errorf("default route names = %v", got)
	}
	if c.Routes[3].Cache.Enabled || !c.Routes[1].Cache.Enabled {
		t.Errorf("cache.enabled: routes[3] %v, routes[1] %v", c.Routes[3].Cache.Enabled, c.Routes[1].Cache.Enabled)
	}
	if rl := r.RateLimits[1]; rl.Key.Kind != KeyIPv6Net || rl.Per != time.Minute || rl.Action != LimitReject {
		t.Errorf("rate_limits[1] = %+v", rl)
	}
	if d := c.Storage.Disk; !d.Sync || !d.Verify {
		t.Errorf("storage.disk = %+v, want sync and verify on", d)
	}
	if c.Storage.Disk.Path != abs("testdata/cache-dir") || c.Log.Access != abs("testdata/access.log") {
		t.Errorf("paths not resolved: disk %q, access log %q", c.Storage.Disk.Path, c.Log.Access)
	}
	if c.Purge.StripSurrogateKey || len(c.Purge.AllowMethodFrom) != 2 {
		t.Errorf("purge = %+v", c.Purge)
	}
}

func TestFullConfigRoundTripsThroughYAML(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Parse("testdata/again.yaml", out)
	if err != nil {
		t.Fatalf("re-parsing the marshalled config: %v\n%s", err, out)
	}
	if c.Fingerprint() != again.Fingerprint() {
		out2, _ := yaml.Marshal(again)
		t.Errorf("config changed on round trip; first:\n%s\nthen:\n%s", out, out2)
	}
}

func TestEmptyConfigIsTheDefault(t *testing.T) {
	want := Default()
	for _, text := range []string{"", "# nothing\n", "{}\n", "~\n", "protection: {}\n"} {
		c, err := Parse("empty.yaml", []byte(text))
		if err != nil {
			t.Fatalf("Parse(%q): %v", text, err)
		}
		if c.Fingerprint() != want.Fingerprint() {
			t.Errorf("Parse(%q) differs from Default()", text)
		}
	}
	if l := want.Listeners; len(l) != 1 || l[0].Addr != "127.0.0.1:8080" || !l[0].H2C {
		t.Errorf("default listeners = %+v", l)
	}
	if want.Admin.Addr != "127.0.0.1:9090" || want.Storage.Memory.Size != 256<<20 || want.Timeouts.Header != 10*time.Second {
		t.Errorf("default admin %+v, storage %+v, timeouts %+v", want.Admin, want.Storage, want.Timeouts)
	}
}

func TestExplicitZeroOverridesDefault(t *testing.T) {
	c, err := Parse("zero.yaml", []byte(`
listeners: [{addr: "127.0.0.1:0", h2c: false}]
timeouts: {header: 0s}
upstreams:
  o:
    servers: [{addr: "a:1"}]
    retries: {max: 0, on: []}
    passive: {consecutive_failures: 0}
    max_idle_per_server: 0
routes:
  - upstream: o
    cache: {lock_timeout: 0, targeted_field: ""}
purge: {surrogate_key_header: ""}
debug: {trace_header: ""}
storage: {memory: {size: 0}}
`))
	if err != nil {
		t.Fatal(err)
	}
	o := c.Upstreams["o"]
	switch {
	case c.Listeners[0].H2C, c.Timeouts.Header != 0, o.Retries.Max != 0, len(o.Retries.On) != 0,
		o.Passive.ConsecutiveFailures != 0, o.MaxIdlePerServer != 0, c.Routes[0].Cache.LockTimeout != 0,
		c.Routes[0].Cache.TargetedField != "", c.Purge.SurrogateKeyHeader != "", c.Debug.TraceHeader != "",
		c.Storage.Memory.Size != 0:
		t.Errorf("an explicit zero was replaced by a default: %+v", c)
	}
	if c.Timeouts.Idle != 60*time.Second || o.Retries.BudgetRatio != 0.2 {
		t.Errorf("absent keys lost their defaults: timeouts %+v, retries %+v", c.Timeouts, o.Retries)
	}
}

func TestMergeKeysShareSettings(t *testing.T) {
	c, err := Parse("merge.yaml", []byte(`
x-upstream: &up
  servers: [{addr: "a:1"}]
  connect_timeout: 1s
  balance: random
upstreams:
  one: {<<: *up}
  two:
    <<: *up
    balance: hash
`))
	if err != nil {
		t.Fatal(err)
	}
	one, two := c.Upstreams["one"], c.Upstreams["two"]
	if one.ConnectTimeout != time.Second || one.Balance != BalanceRandom || two.Balance != BalanceHash || two.Servers[0].Addr != "a:1" {
		t.Errorf("one = %+v\ntwo = %+v", one, two)
	}
}

func TestPathPatternsCompileToAnchoredRegexps(t *testing.T) {
	tests := []struct {
		match   Match
		path    string
		matches bool
	}{
		{Match{PathPattern: "/packages/*/*.whl"}, "/packages/ab/x.whl", true},
		{Match{PathPattern: "/packages/*/*.whl"}, "/packages/a/b/x.whl", false},
		{Match{PathPattern: "/packages/**/*.whl"}, "/packages/x.whl", true},
		{Match{PathPattern: "/packages/**/*.whl"}, "/packages/a/b/c/x.whl", true},
		{Match{PathPattern: "/packages/**/*.whl"}, "/packages/a/b/c/x.whl.asc", false},
		{Match{PathPattern: "/simple/**"}, "/simple/", true},
		{Match{PathPattern: "/a.b"}, "/aXb", false},
		{Match{PathRegex: "/simple/[^/]+/"}, "/simple/numpy/", true},
		{Match{PathRegex: "/simple/[^/]+/"}, "/x/simple/numpy/", false},
		{Match{PathRegex: "/a|/b"}, "/b", true},
		{Match{PathRegex: "/a|/b"}, "/bc", false},
	}
	for _, tt := range tests {
		k := &checker{c: &Config{}}
		re := k.pathRegexp("match", &tt.match)
		if re == nil {
			t.Fatalf("%+v did not compile: %v", tt.match, k.errs)
		}
		if got := re.MatchString(tt.path); got != tt.matches {
			t.Errorf("%s (%s) matching %q = %v, want %v", tt.match.PathPattern+tt.match.PathRegex, re, tt.path, got, tt.matches)
		}
	}
}

func TestConfigBuiltInGoIsProvisionedAndChecked(t *testing.T) {
	c := Default()
	u := NewUpstream()
	u.Servers = []Server{{Addr: "127.0.0.1:9000", Weight: 1}}
	c.Upstreams = map[string]*Upstream{"origin": u}
	r0, r1 := NewRoute(), Route{Upstream: "elsewhere"} // a zero Route works too
	r0.Upstream, r0.Match.PathPrefix = "origin", "/"
	c.Routes = []Route{r0, r1}
	err := c.Provision()
	want := `routes[1].upstream: unknown upstream "elsewhere"`
	if err == nil || err.Error() != want {
		t.Fatalf("Provision() = %v, want %s", err, want)
	}
	c.Routes = c.Routes[:1]
	if err := c.Provision(); err != nil {
		t.Fatal(err)
	}
	if c.Upstreams["origin"].Name != "origin" || c.Routes[0].Name != "route0" {
		t.Errorf("names not provisioned: %+v", c)
	}
}

func TestFingerprintTracksContent(t *testing.T) {
	a, _ := Parse("a.yaml", []byte("log: {level: info}\n"))
	b, _ := Parse("b.yaml", []byte("# same as the default\nlog:\n  level: info\n"))
	c, _ := Parse("c.yaml", []byte("log: {level: debug}\n"))
	if a.Fingerprint() != b.Fingerprint() {
		t.Error("same settings, different fingerprints")
	}
	if a.Fingerprint() == c.Fingerprint() {
		t.Error("different settings, same fingerprint")
	}
}

func TestLoadReportsMissingFile(t *testing.T) {
	_, err := Load("testdata/does-not-exist.yaml")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file = %v, want an error wrapping fs.ErrNotExist", err)
	}
}

func TestErrorPrintsWhatIsKnown(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{"a.yaml", 3, "routes[0].name", "bad"}, "a.yaml:3: routes[0].name: bad"},
		{Error{"a.yaml", 0, "routes[0].name", "bad"}, "a.yaml: routes[0].name: bad"},
		{Error{"", 3, "log", "bad"}, "line 3: log: bad"},
		{Error{"", 0, "log", "bad"}, "log: bad"},
		{Error{"a.yaml", 2, "", "bad"}, "a.yaml:2: bad"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestAliasAndMergeBombsAreRefused(t *testing.T) {
	var b strings.Builder
	b.WriteString("x-0: &a0 {level: info}\n")
	for i := 1; i <= 8; i++ {
		fmt.Fprintf(&b, "x-%d: &a%d {<<: [", i, i)
		for j := range 8 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*a%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("log: {<<: *a8}\n")
	tests := []struct{ name, yaml, want string }{
		{"self-merge", "log: &l {<<: [*l, *l, *l, *l]}\n",
			"bomb.yaml:1: log: merge keys (<<) nested too deeply or referring to themselves\n" +
				"bomb.yaml:1: log: document too large or too deeply aliased"},
		{"exponential merge", b.String(),
			"bomb.yaml:2: log: document too large or too deeply aliased"},
	}
	for _, tt := range tests {
		_, err := Parse("bomb.yaml", []byte(tt.yaml))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: Parse = %v, want %s", tt.name, err, tt.want)
		}
	}
}

func TestGoBuiltTLSVersionIsChecked(t *testing.T) {
	c := Default()
	c.Listeners[0].TLS = &ListenerTLS{
		Certs:      []Certificate{{Cert: "testdata/cert.pem", Key: "testdata/key.pem"}},
		MinVersion: tls.VersionTLS11,
	}
	_ = c.Fingerprint() // must not panic on a version it cannot write as 1.x
	err := c.Provision()
	want := "listeners[0].tls.min_version: unsupported TLS version 0x0302: want 1.2 or 1.3"
	if err == nil || err.Error() != want {
		t.Errorf("Provision() = %v, want %s", err, want)
	}
}

func TestZeroConfigProvisions(t *testing.T) {
	var c Config
	if err := c.Provision(); err != nil {
		t.Fatal(err)
	}
	if len(c.Listeners) != 1 || c.Limits.MaxHeaders != 100 || c.Log.Level != "info" {
		t.Errorf("zero config provisioned to %+v", c)
	}
}
