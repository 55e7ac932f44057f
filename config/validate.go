package config

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
)

// checker provisions and validates one Config, collecting every problem.
type checker struct {
	c    *Config
	errs []*Error
}

// errorf records a problem with key, at the line of key or of its nearest
// parent that appears in the file.
func (k *checker) errorf(key, format string, args ...any) {
	k.errs = append(k.errs, &Error{File: k.c.File, Line: k.c.lineOf(key), Key: key, Reason: fmt.Sprintf(format, args...)})
}

// lineOf returns the line of key, or of its nearest parent in the file.
func (c *Config) lineOf(key string) int {
	for key != "" {
		if line, ok := c.lines[key]; ok {
			return line
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// provision fills derived fields: names, lowercased hosts, absolute paths
// and compiled patterns.
func (k *checker) provision() {
	c := k.c
	c.Log.fillZero()
	setZero(&c.Limits.MaxHeaderBytes, 64<<10)
	setZero(&c.Limits.MaxHeaders, 100)
	if c.Listeners == nil { // absent, as in a zero Config; an explicit empty list is refused
		c.Listeners = []Listener{NewListener()}
	}
	for i := range c.Listeners {
		setZero(&c.Listeners[i].Addr, "127.0.0.1:8080")
		if t := c.Listeners[i].TLS; t != nil {
			setZero(&t.MinVersion, tls.VersionTLS12)
			for j := range t.Certs {
				k.resolve(&t.Certs[j].Cert)
				k.resolve(&t.Certs[j].Key)
			}
			k.resolve(&t.ClientCA)
			if t.ACME != nil {
				k.provisionACME(t.ACME)
			}
		}
	}
	k.resolve(&c.Admin.TokenFile)
	k.resolve(&c.Admin.FiddleDir)
	k.resolve(&c.Debug.TraceTokenFile)
	for i, h := range c.Admin.Hosts {
		c.Admin.Hosts[i] = strings.ToLower(h)
	}
	k.resolve(&c.Storage.Disk.Path)
	if !slices.Contains([]string{"stdout", "stderr", "off"}, c.Log.Access) {
		k.resolve(&c.Log.Access)
	}
	for _, name := range k.upstreamNames() {
		u, key := c.Upstreams[name], joinMapKey("upstreams", name)
		if u == nil {
			k.errorf(key, "must not be null")
			delete(c.Upstreams, name)
			continue
		}
		u.Name = name
		u.fillZero()
		k.resolve(&u.TLS.CA)
		k.resolve(&u.TLS.ClientCert)
		k.resolve(&u.TLS.ClientKey)
		if u.S3 != nil {
			k.resolve(&u.S3.Credentials.File)
		}
		u.Retries.Conditions = k.retryConditions(key+".retries.on", u.Retries.On)
	}
	for i := range c.Routes {
		r := &c.Routes[i]
		if r.Name == "" {
			r.Name = "route" + strconv.Itoa(i)
		}
		r.fillZero()
		for j, h := range r.Match.Hosts {
			r.Match.Hosts[j] = strings.ToLower(h)
		}
		r.Match.PathRegexp = k.pathRegexp(fmt.Sprintf("routes[%d].match", i), &r.Match)
		r.Match.Condition = k.condition(fmt.Sprintf("routes[%d].match.expr", i), r.Match.Expr)
		for j := range r.RateLimits {
			setZero(&r.RateLimits[j].Name, r.Name+"."+strconv.Itoa(j))
			k.keyProgram(fmt.Sprintf("routes[%d].rate_limits[%d].key", i, j), &r.RateLimits[j])
		}
	}
	k.provisionProtection()
	k.wasmProvision()
	k.provisionCluster()
}

// setZero sets *v to def if *v is its type's zero value. It is used for
// settings whose zero value is not a legal one, so that a struct built in
// Go with such fields left out means the defaults.
func setZero[T comparable](v *T, def T) {
	var zero T
	if *v == zero {
		*v = def
	}
}

func (u *Upstream) fillZero() {
	setZero(&u.Type, UpstreamHTTP)
	setZero(&u.Protocol, ProtocolHTTP1)
	setZero(&u.Balance, BalanceRoundRobin)
	setZero(&u.HashKey, KeySource{Kind: KeyURL})
	setZero(&u.Health.ExpectStatus, StatusRange{200, 399})
}

func (r *Route) fillZero() {
	if r.FallbackOn == nil {
		r.FallbackOn = []int{403, 404}
	}
	setZero(&r.Cache.Key.Query, QueryAll)
	setZero(&r.Cache.SetCookie, "pass")
	for i := range r.RateLimits {
		setZero(&r.RateLimits[i].Key, KeySource{Kind: KeyClientIP})
		setZero(&r.RateLimits[i].Action, LimitReject)
	}
}

func (l *Log) fillZero() {
	setZero(&l.Access, "stdout")
	setZero(&l.Format, "json")
	setZero(&l.Level, "info")
}

// resolve makes a relative path absolute against the config file's
// directory, so that the config means the same whatever the working
// directory of the process that loads it.
func (k *checker) resolve(p *string) {
	if *p == "" || filepath.IsAbs(*p) {
		return
	}
	joined := filepath.Join(filepath.Dir(k.c.File), *p)
	if abs, err := filepath.Abs(joined); err == nil {
		joined = abs
	}
	*p = joined
}

func (k *checker) retryConditions(key string, on []string) RetryConditions {
	var rc RetryConditions
	for i, cond := range on {
		switch cond {
		case "connect":
			rc.Connect = true
		case "reset":
			rc.Reset = true
		case "timeout":
			rc.Timeout = true
		default:
			status, err := strconv.Atoi(cond)
			if err != nil || status < 100 || status > 599 {
				k.errorf(fmt.Sprintf("%s[%d]", key, i), "unknown retry condition %q: want connect, reset, timeout or a status code", cond)
				continue
			}
			rc.Statuses = append(rc.Statuses, status)
		}
	}
	return rc
}

// pathRegexp compiles the glob or regular expression of m, if any,
// anchored at both ends.
func (k *checker) pathRegexp(key string, m *Match) *regexp.Regexp {
	var anchored, sub string
	switch {
	case m.PathPattern != "":
		anchored, sub = globRegexp(m.PathPattern), "path_pattern"
	case m.PathRegex != "":
		anchored, sub = "^(?:"+m.PathRegex+")$", "path_regex"
	default:
		return nil
	}
	re, err := regexp.Compile(anchored)
	if err == nil {
		return re
	}
	if sub == "path_regex" {
		// Report the error as the user wrote the expression, not wrapped.
		if _, bare := regexp.Compile(m.PathRegex); bare != nil {
			err = bare
		}
	}
	var se *syntax.Error
	if errors.As(err, &se) {
		err = fmt.Errorf("%s: `%s`", se.Code, se.Expr)
	}
	k.errorf(key+"."+sub, "bad regular expression: %v", err)
	return nil
}

// globRegexp translates a path glob: "**/" matches any number of whole
// segments, "**" anything, "*" anything within one segment.
func globRegexp(glob string) string {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(glob); {
		switch {
		case strings.HasPrefix(glob[i:], "**/"):
			b.WriteString("(?:.*/)?")
			i += 3
		case strings.HasPrefix(glob[i:], "**"):
			b.WriteString(".*")
			i += 2
		case glob[i] == '*':
			b.WriteString("[^/]*")
			i++
		default:
			j := i
			for j < len(glob) && glob[j] != '*' {
				j++
			}
			b.WriteString(regexp.QuoteMeta(glob[i:j]))
			i = j
		}
	}
	b.WriteString("$")
	return b.String()
}

// validate checks the provisioned config. It reads no files beyond
// checking that the named ones exist.
func (k *checker) validate() {
	k.listeners()
	k.admin()
	k.limits()
	for _, name := range k.upstreamNames() {
		k.upstream(joinMapKey("upstreams", name), k.c.Upstreams[name])
	}
	k.routes()
	k.protection()
	k.wasm()
	k.storage()
	k.oneOf("log.format", k.c.Log.Format, "json", "text")
	k.oneOf("log.level", k.c.Log.Level, "debug", "info", "warn", "error")
	k.oneOf("proxy.encoded_slash", k.c.Proxy.EncodedSlash, "keep", "decode", "reject", "")
	k.oneOf("proxy.forward_path", k.c.Proxy.ForwardPath, "normalized", "as_sent", "")
	k.headerName("purge.surrogate_key_header", k.c.Purge.SurrogateKeyHeader, true)
	k.debug()
	k.proxy()
	k.otel()
	k.cluster()
}

func (k *checker) debug() {
	d := k.c.Debug
	k.headerName("debug.trace_header", d.TraceHeader, true)
	k.tokenSource("debug.trace_token_file", "debug.trace_token_env", d.TraceTokenFile, d.TraceTokenEnv)
	if fi, err := os.Stat(d.TraceTokenFile); err == nil && fi.Mode().IsRegular() && fi.Size() < minTraceToken {
		k.errorf("debug.trace_token_file", "%s holds %d bytes; a token needs at least %d", d.TraceTokenFile, fi.Size(), minTraceToken)
	}
}

// tokenSource checks a secret given as a file or an environment variable:
// at most one of them, the file present, the variable name well formed.
func (k *checker) tokenSource(fileKey, envKey, file, env string) {
	if file != "" && env != "" {
		k.errorf(envKey, "set %s or %s, not both", fileKey[strings.LastIndexByte(fileKey, '.')+1:], envKey[strings.LastIndexByte(envKey, '.')+1:])
	}
	if env != "" && !envName.MatchString(env) {
		k.errorf(envKey, "%q is not an environment variable name", env)
	}
	k.file(fileKey, file, false)
}

func (k *checker) proxy() {
	p := k.c.Proxy
	k.headerList("proxy.strip_request_headers", p.StripRequestHeaders)
	k.headerList("proxy.keep_request_headers", p.KeepRequestHeaders)
	for i, proto := range p.UpgradeAllow {
		key := fmt.Sprintf("proxy.upgrade_allow[%d]", i)
		switch {
		case !isToken(proto):
			k.errorf(key, "%q is not a protocol name", proto)
		case strings.EqualFold(proto, "h2c"):
			k.errorf(key, "h2c is never forwarded: an h2c tunnel would carry requests past every rule")
		}
	}
}

// bound is an address the process listens on, for conflict checks.
type bound struct {
	key, addr, host string
	port            int
}

func (k *checker) listeners() {
	if len(k.c.Listeners) == 0 {
		k.errorf("listeners", "at least one listener is required")
	}
	var taken []bound
	for i, l := range k.c.Listeners {
		key := fmt.Sprintf("listeners[%d]", i)
		taken = k.listenAddr(taken, key+".addr", l.Addr)
		switch {
		case l.ProxyProtocol && len(l.ProxyProtocolFrom) == 0:
			k.errorf(key+".proxy_protocol_from", "is required with proxy_protocol: list the networks of the load balancers that send PROXY headers")
		case !l.ProxyProtocol && len(l.ProxyProtocolFrom) > 0:
			k.errorf(key+".proxy_protocol_from", "is only used with proxy_protocol: true")
		}
		switch {
		case l.HTTP3 && l.TLS == nil:
			k.errorf(key+".http3", "needs tls: HTTP/3 is always encrypted")
		case l.HTTP3 && l.ProxyProtocol:
			k.errorf(key+".http3", "cannot go with proxy_protocol: QUIC carries no PROXY header, so its clients would be judged by another address")
		}
		if l.TLS == nil {
			continue
		}
		if l.RedirectHTTPS {
			k.errorf(key+".redirect_https", "is for a plain listener: this one has tls")
		}
		if v := l.TLS.MinVersion; v != tls.VersionTLS12 && v != tls.VersionTLS13 {
			k.errorf(key+".tls.min_version", "unsupported TLS version %s: want 1.2 or 1.3", v)
		}
		switch {
		case l.TLS.ACME != nil && len(l.TLS.Certs) > 0:
			k.errorf(key+".tls.acme", "give certs or acme, not both")
		case l.TLS.ACME != nil:
			k.acme(key+".tls.acme", l.TLS.ACME)
			if l.TLS.ClientCA != "" {
				k.errorf(key+".tls.client_ca", "is not supported with acme: the CA's TLS-ALPN-01 check presents no client certificate")
			}
		case len(l.TLS.Certs) == 0:
			k.errorf(key+".tls.certs", "at least one certificate is required")
		}
		for j, cert := range l.TLS.Certs {
			ck := fmt.Sprintf("%s.tls.certs[%d]", key, j)
			k.file(ck+".cert", cert.Cert, true)
			k.file(ck+".key", cert.Key, true)
		}
		k.file(key+".tls.client_ca", l.TLS.ClientCA, false)
	}
	if k.c.Admin.Addr != "" {
		k.listenAddr(taken, "admin.addr", k.c.Admin.Addr)
	}
}

// listenAddr checks a listen address and that no earlier one in taken
// already holds its port, and returns taken with it added.
func (k *checker) listenAddr(taken []bound, key, addr string) []bound {
	host, port, ok := k.hostPort(key, addr, false)
	if !ok {
		return taken
	}
	b := bound{key: key, addr: addr, host: host, port: port}
	for _, t := range taken {
		if t.port != 0 && t.port == b.port && (t.host == b.host || isWildcard(t.host) || isWildcard(b.host)) {
			k.errorf(key, "address %s conflicts with %s (%s)", addr, strings.TrimSuffix(t.key, ".addr"), t.addr)
			return taken
		}
	}
	return append(taken, b)
}

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

// hostPort splits and checks a host:port address. An upstream server needs
// a host and a non-zero port; a listen address may leave out the host
// (every interface) and use port 0 (ephemeral).
func (k *checker) hostPort(key, addr string, server bool) (string, int, bool) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		k.errorf(key, "bad address %q: want host:port", addr)
		return "", 0, false
	}
	port, err := strconv.Atoi(portStr)
	switch {
	case err != nil || port < 0 || port > 65535:
		k.errorf(key, "bad port %q in %q: want 0 to 65535", portStr, addr)
	case server && port == 0:
		k.errorf(key, "address %q needs a non-zero port", addr)
	case server && host == "":
		k.errorf(key, "address %q needs a host", addr)
	case host != "" && !validHost(host):
		k.errorf(key, "bad host %q in %q", host, addr)
	default:
		if a, err := netip.ParseAddr(host); err == nil {
			host = a.Unmap().String()
		}
		return strings.ToLower(host), port, true
	}
	return "", 0, false
}

// validHost reports whether host is an IP address or a DNS name.
func validHost(host string) bool {
	if _, err := netip.ParseAddr(host); err == nil {
		return true
	}
	if len(host) > 253 {
		return false
	}
	for label := range strings.SplitSeq(host, ".") {
		if label == "" || len(label) > 63 || strings.HasPrefix(label, "-") {
			return false
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// file checks that path names a readable regular file; "" is accepted
// unless required.
func (k *checker) file(key, path string, required bool) {
	if path == "" {
		if required {
			k.errorf(key, "is required")
		}
		return
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		k.errorf(key, "file %s does not exist", path)
	case err != nil:
		k.errorf(key, "cannot use file: %v", err)
	case !fi.Mode().IsRegular():
		k.errorf(key, "%s is not a regular file", path)
	}
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func (k *checker) admin() {
	a := k.c.Admin
	if a.TokenFile != "" && a.TokenEnv != "" {
		k.errorf("admin.token_env", "set token_file or token_env, not both")
	}
	if a.TokenEnv != "" && !envName.MatchString(a.TokenEnv) {
		k.errorf("admin.token_env", "%q is not an environment variable name", a.TokenEnv)
	}
	k.file("admin.token_file", a.TokenFile, false)
	for i, h := range a.Hosts {
		if !validHost(h) {
			k.errorf(fmt.Sprintf("admin.hosts[%d]", i), "bad host name %q: want a name or an IP address, without a port", h)
		}
	}
	if a.Addr == "" || a.TokenFile != "" || a.TokenEnv != "" {
		return
	}
	host, _, err := net.SplitHostPort(a.Addr)
	if ip, perr := netip.ParseAddr(host); err == nil && host != "localhost" && (perr != nil || !ip.IsLoopback()) {
		k.errorf("admin.addr", "admin API on non-loopback address %s needs token_file or token_env", a.Addr)
	}
}

func (k *checker) limits() {
	l := k.c.Limits
	if l.MaxHeaderBytes < 1<<10 || l.MaxHeaderBytes > 1<<20 {
		k.errorf("limits.max_header_bytes", "must be from 1KiB to 1MiB, got %s", l.MaxHeaderBytes)
	}
	k.intRange("limits.max_headers", l.MaxHeaders, 1, 10000)
}

func (k *checker) intRange(key string, v, lo, hi int) {
	if v < lo || v > hi {
		k.errorf(key, "must be from %d to %d, got %d", lo, hi, v)
	}
}

func (k *checker) oneOf(key, v string, allowed ...string) {
	if !slices.Contains(allowed, v) {
		k.errorf(key, "unknown value %q: want %s%s", v, strings.Join(allowed, ", "), suggest(v, allowed))
	}
}

// headerName checks a header (or method) name is an RFC 9110 token.
func (k *checker) headerName(key, name string, optional bool) {
	if name == "" && optional {
		return
	}
	if !isToken(name) {
		k.errorf(key, "%q is not a valid header name", name)
	}
}

var plainName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)

func (k *checker) upstream(key string, u *Upstream) {
	if !plainName.MatchString(u.Name) {
		k.errorf(key, "upstream name %q must be letters, digits, '_', '-' or '.'", u.Name)
	}
	k.s3Upstream(key, u)
	k.shield(key+".shield", u.Shield)
	if u.Type == UpstreamHTTP && len(u.Servers) == 0 && (u.DNS == nil || u.DNS.SRV == "") {
		k.errorf(key+".servers", "at least one server (or dns.srv) is required")
	}
	seen := map[string]int{}
	for i, s := range u.Servers {
		sk := fmt.Sprintf("%s.servers[%d]", key, i)
		k.hostPort(sk+".addr", s.Addr, true)
		k.intRange(sk+".weight", s.Weight, 1, 10000)
		if first, dup := seen[s.Addr]; dup {
			k.errorf(sk+".addr", "duplicate server %s (also servers[%d])", s.Addr, first)
		}
		seen[s.Addr] = i
	}
	if u.DNS != nil && u.DNS.Refresh <= 0 {
		k.errorf(key+".dns.refresh", "must be positive")
	}
	if u.DNS != nil && u.DNS.SRV != "" && !validHost(u.DNS.SRV) {
		k.errorf(key+".dns.srv", "bad SRV name %q: want a name such as _http._tcp.origin.internal", u.DNS.SRV)
	}
	k.oneOf(key+".protocol", string(u.Protocol), "http1", "h2", "h2c")
	k.upstreamTLS(key, u)
	k.oneOf(key+".balance", string(u.Balance), "round_robin", "weighted", "random", "hash", "least_request", "peak_ewma")
	switch u.HashKey.Kind {
	case KeyURL, KeyClientIP, KeyHeader, KeyCookie:
		if u.HashKey.Kind != KeyURL && u.Balance != BalanceHash {
			k.errorf(key+".hash_key", "is used only with balance: hash")
		}
	default:
		k.errorf(key+".hash_key", "%q cannot be a hash key: want url, client_ip, header:NAME or cookie:NAME", u.HashKey)
	}
	if u.StickyCookie != "" && !isToken(u.StickyCookie) {
		k.errorf(key+".sticky_cookie", "%q is not a valid cookie name", u.StickyCookie)
	}
	k.health(key+".health", &u.Health)
	k.intRange(key+".passive.max_ejected_percent", u.Passive.MaxEjectedPercent, 0, 100)
	k.intRange(key+".retries.max", u.Retries.Max, 0, 10)
	if u.Retries.BudgetRatio > 1 {
		k.errorf(key+".retries.budget_ratio", "must be from 0 to 1, got %v", u.Retries.BudgetRatio)
	}
	k.failover(key+".failover", u)
}

func (k *checker) upstreamTLS(key string, u *Upstream) {
	t := u.TLS
	switch {
	case u.Protocol == ProtocolH2 && !t.Enabled:
		k.errorf(key+".protocol", "h2 needs tls.enabled (use h2c for cleartext HTTP/2)")
	case u.Protocol == ProtocolH2C && t.Enabled:
		k.errorf(key+".protocol", "h2c is cleartext; use h2 with tls.enabled")
	}
	if (t.ClientCert == "") != (t.ClientKey == "") {
		k.errorf(key+".tls", "client_cert and client_key go together")
	}
	if !t.Enabled && (t.SNI != "" || t.CA != "" || t.ClientCert != "") {
		k.errorf(key+".tls.enabled", "TLS settings are given but tls.enabled is false")
	}
	k.file(key+".tls.ca", t.CA, false)
	k.file(key+".tls.client_cert", t.ClientCert, false)
	k.file(key+".tls.client_key", t.ClientKey, false)
}

func (k *checker) health(key string, h *Health) {
	if h.Path != "" && !strings.HasPrefix(h.Path, "/") {
		k.errorf(key+".path", "must start with /")
	}
	k.pathChars(key+".path", h.Path)
	if h.Path != "" && h.TCP {
		k.errorf(key+".tcp", "set path (an HTTP check) or tcp, not both")
	}
	if h.Interval <= 0 {
		k.errorf(key+".interval", "must be positive")
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		k.errorf(key+".timeout", "must be positive and at most interval (%v)", h.Interval)
	}
	k.intRange(key+".rise", h.Rise, 1, 100)
	k.intRange(key+".fall", h.Fall, 1, 100)
}

func (k *checker) failover(key string, u *Upstream) {
	f := u.Failover
	if f.BackupUpstream == "" {
		if len(f.OnStatus) > 0 {
			k.errorf(key+".on_status", "needs backup_upstream")
		}
		return
	}
	switch {
	case f.BackupUpstream == u.Name:
		k.errorf(key+".backup_upstream", "an upstream cannot be its own backup")
	case k.c.Upstreams[f.BackupUpstream] == nil:
		k.errorf(key+".backup_upstream", "unknown upstream %q%s", f.BackupUpstream, suggest(f.BackupUpstream, k.upstreamNames()))
	}
	for i, s := range f.OnStatus {
		k.intRange(fmt.Sprintf("%s.on_status[%d]", key, i), s, 100, 599)
	}
}

func (k *checker) upstreamNames() []string {
	names := make([]string, 0, len(k.c.Upstreams))
	for name := range k.c.Upstreams {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func (k *checker) routes() {
	seen := map[string]int{}
	catchAll := -1 // index of the first route that matches every request
	for i := range k.c.Routes {
		r := &k.c.Routes[i]
		key := fmt.Sprintf("routes[%d]", i)
		if catchAll >= 0 && catchAll == i-1 {
			k.errorf(key, "can never match: routes[%d] (%q) before it matches every request", catchAll, k.c.Routes[catchAll].Name)
		}
		if catchAll < 0 && r.Match.matchesAll() {
			catchAll = i
		}
		if first, dup := seen[r.Name]; dup {
			k.errorf(key+".name", "duplicate route name %q (also routes[%d])", r.Name, first)
		} else if !plainName.MatchString(r.Name) {
			k.errorf(key+".name", "route name %q must be letters, digits, '_', '-' or '.'", r.Name)
		}
		seen[r.Name] = i
		k.match(key+".match", &r.Match)
		switch {
		case r.Upstream != "" && r.Respond != nil:
			k.errorf(key, "set either upstream or respond, not both")
		case r.Respond != nil:
			k.intRange(key+".respond.status", r.Respond.Status, 100, 599)
			if st := r.Respond.Status; r.Respond.Body != "" && (st < 200 || st == 204 || st == 304) {
				k.errorf(key+".respond.body", "a %d response has no body", st)
			}
			k.headerSets(key+".respond.headers", r.Respond.Headers)
		case r.Upstream == "":
			k.errorf(key, "needs an upstream or a respond")
		case k.c.Upstreams[r.Upstream] == nil:
			k.errorf(key+".upstream", "unknown upstream %q%s", r.Upstream, suggest(r.Upstream, k.upstreamNames()))
		}
		k.routeFallback(key, r)
		k.transforms(key, r)
		k.headerOps(key+".headers", &r.Headers)
		k.cache(key+".cache", &r.Cache)
		for j := range r.RateLimits {
			k.rateLimit(fmt.Sprintf("%s.rate_limits[%d]", key, j), &r.RateLimits[j])
		}
	}
}

// matchesAll reports whether m sets no condition at all.
func (m *Match) matchesAll() bool {
	return len(m.Hosts) == 0 && m.PathPrefix == "" && m.PathExact == "" && m.PathPattern == "" &&
		m.PathRegex == "" && len(m.Methods) == 0 && len(m.Headers) == 0 && m.Expr == ""
}

func (k *checker) match(key string, m *Match) {
	set := 0
	for _, p := range []struct{ name, value string }{
		{"path_prefix", m.PathPrefix}, {"path_exact", m.PathExact},
		{"path_pattern", m.PathPattern}, {"path_regex", m.PathRegex},
	} {
		if p.value == "" {
			continue
		}
		if set++; set > 1 {
			k.errorf(key+"."+p.name, "only one of path_prefix, path_exact, path_pattern and path_regex may be set")
		}
		if p.name != "path_regex" && !strings.HasPrefix(p.value, "/") {
			k.errorf(key+"."+p.name, "must start with /")
		}
	}
	for i, h := range m.Hosts {
		if !validHost(strings.TrimPrefix(h, "*.")) {
			k.errorf(fmt.Sprintf("%s.hosts[%d]", key, i), "bad host name %q: want a name, an IP address or *.domain", h)
		}
	}
	for i, method := range m.Methods {
		k.method(fmt.Sprintf("%s.methods[%d]", key, i), method)
	}
	k.headerMap(key+".headers", m.Headers)
}

func (k *checker) method(key, m string) {
	if !isToken(m) {
		k.errorf(key, "%q is not a valid method", m)
	}
}

// headerMap checks the names and values of a header mapping. Values are
// written to the wire as they are, so a CR or LF in one would start a
// field, or a whole message, of its own.
func (k *checker) headerMap(key string, h map[string]string) {
	for name, value := range h {
		fk := joinMapKey(key, name)
		k.headerName(fk, name, false)
		k.fieldValue(fk, value)
	}
}

// headerSets checks a mapping of fields the proxy writes: as headerMap,
// and no field the proxy frames the message or the connection with.
func (k *checker) headerSets(key string, h map[string]string) {
	k.headerMap(key, h)
	for name := range h {
		if managedField(name) {
			k.errorf(joinMapKey(key, name), "%s is set by the proxy itself (message framing or hop-by-hop) and cannot be configured", name)
		}
	}
}

// managedField reports whether name is a framing or hop-by-hop field
// (RFC 9110 section 7.6.1), which the proxy writes for each connection.
func managedField(name string) bool {
	for _, m := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive",
		"Proxy-Connection", "TE", "Trailer", "Upgrade"} {
		if strings.EqualFold(name, m) {
			return true
		}
	}
	return false
}

// fieldValue checks v against the field value syntax of RFC 9110 section
// 5.5: visible characters and obs-text, with spaces and tabs only between
// them.
func (k *checker) fieldValue(key, v string) {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			k.errorf(key, "value %q has control byte %#02x at offset %d, which a header field cannot carry", v, c, i)
			return
		}
	}
	if strings.Trim(v, " \t") != v {
		k.errorf(key, "value %q must not start or end with white space", v)
	}
}

// pathChars checks that a configured path has no control characters or
// spaces, as it is written into a request line or a page.
func (k *checker) pathChars(key, p string) {
	for i := 0; i < len(p); i++ {
		if c := p[i]; c <= ' ' || c == 0x7f {
			k.errorf(key, "%q has byte %#02x at offset %d: a path cannot hold spaces or control characters", p, c, i)
			return
		}
	}
}

func (k *checker) headerList(key string, names []string) {
	for i, name := range names {
		k.headerName(fmt.Sprintf("%s[%d]", key, i), name, false)
	}
}

func (k *checker) headerOps(key string, h *HeaderOps) {
	k.headerSets(key+".request_set", h.RequestSet)
	k.headerList(key+".request_remove", h.RequestRemove)
	k.headerSets(key+".response_set", h.ResponseSet)
	k.headerList(key+".response_remove", h.ResponseRemove)
}

func (k *checker) cache(key string, c *Cache) {
	if c.MinTTL > 0 && c.MaxTTL > 0 && c.MinTTL > c.MaxTTL {
		k.errorf(key+".min_ttl", "must not exceed max_ttl (%v)", c.MaxTTL)
	}
	for i, m := range c.Methods {
		k.method(fmt.Sprintf("%s.methods[%d]", key, i), m)
	}
	k.oneOf(key+".key.query", string(c.Key.Query), "all", "none", "list")
	switch {
	case c.Key.Query == QueryList && len(c.Key.QueryParams) == 0:
		k.errorf(key+".key.query_params", "query: list needs at least one parameter")
	case c.Key.Query != QueryList && len(c.Key.QueryParams) > 0:
		k.errorf(key+".key.query_params", "only used with query: list")
	}
	k.headerList(key+".key.headers", c.Key.Headers)
	k.headerName(key+".targeted_field", c.TargetedField, true)
	k.oneOf(key+".set_cookie", c.SetCookie, "pass", "strip", "store")
	if c.SegmentSize != 0 && (c.SegmentSize < 4<<10 || c.SegmentSize > 64<<20) {
		k.errorf(key+".segment_size", "must be between 4KiB and 64MiB")
	}
}

func (k *checker) rateLimit(key string, r *RateLimit) {
	switch r.Key.Kind {
	case KeyClientIP, KeyIPv6Net, KeyHeader, KeyRoute, KeyExpr:
	default:
		k.errorf(key+".key", "%q cannot be a rate limit key: want client_ip, ipv6_64, header:NAME, route or expr:SOURCE", r.Key)
	}
	if r.Rate <= 0 {
		k.errorf(key+".rate", "must be positive")
	}
	if r.Per <= 0 {
		k.errorf(key+".per", "must be positive")
	}
	k.oneOf(key+".action", string(r.Action), "reject", "log")
}

func (k *checker) storage() {
	if m := k.c.Storage.Memory; m.MaxObjectSize > m.Size {
		k.errorf("storage.memory.max_object_size", "must not exceed storage.memory.size (%s)", m.Size)
	}
	d := k.c.Storage.Disk
	switch {
	case d.Path != "" && d.Size <= 0:
		k.errorf("storage.disk.size", "must be positive when path is set")
	case d.Path == "" && d.Size > 0:
		k.errorf("storage.disk.path", "is required when size is set")
	}
}
