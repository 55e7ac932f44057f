package main

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/node"
)

// quickstart is what the quickstart command and run --origin are told.
type quickstart struct {
	origin  string
	domains []string
	listen  string
	admin   string
	email   string
}

// flags adds the quickstart flags to fs.
func (q *quickstart) flags(fs *flag.FlagSet) {
	fs.StringVar(&q.origin, "origin", "", "the origin's URL, http://HOST[:PORT] or https://HOST[:PORT] (required)")
	fs.Func("domain", "a name to serve over HTTPS with a certificate obtained by ACME (repeatable); the node then listens on :443 and :80", func(s string) error {
		q.domains = append(q.domains, strings.ToLower(s))
		return nil
	})
	fs.StringVar(&q.listen, "listen", "127.0.0.1:8080", "the cleartext listener's address, without --domain")
	fs.StringVar(&q.admin, "admin", "127.0.0.1:9090", `the admin API's address ("" turns it off)`)
	fs.StringVar(&q.email, "email", "", "the contact address given to the ACME CA, with --domain")
}

func quickstartCmd(args []string, stdout io.Writer) error {
	var q quickstart
	var out string
	fs := flag.NewFlagSet("quickstart", flag.ContinueOnError)
	q.flags(fs)
	fs.StringVar(&out, "o", "", "the file to write (default: stdout); an existing file is not overwritten")
	if err := fs.Parse(args); err != nil {
		return err
	}
	text, err := q.config()
	if err != nil {
		return err
	}
	if _, err := config.Parse(cmp.Or(out, "quickstart.yaml"), []byte(text)); err != nil {
		return fmt.Errorf("quickstart: the generated config does not validate: %w", err)
	}
	if out == "" {
		_, err := io.WriteString(stdout, text)
		return err
	}
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	if _, err := io.WriteString(f, text); err != nil {
		f.Close()
		return fmt.Errorf("quickstart: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("quickstart: %w", err)
	}
	fmt.Fprintf(stdout, "wrote %s: check it with `outpost validate -c %[1]s`, run it with `outpost run -c %[1]s`\n", out)
	return nil
}

// runOriginCmd runs the quickstart config without writing it.
func runOriginCmd(args []string) error {
	var q quickstart
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	q.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	text, err := q.config()
	if err != nil {
		return err
	}
	cfg, err := config.Parse("", []byte(text))
	if err != nil {
		return fmt.Errorf("the generated config does not validate: %w", err)
	}
	n, err := node.Start(cfg, node.Options{SetMemoryLimit: true})
	if err != nil {
		return err
	}
	n.Log.Info("outpost running (to keep this config: outpost quickstart with the same flags and -o FILE)",
		"version", node.Version, "origin", q.origin, "listeners", fmt.Sprint(n.Addrs()), "admin", fmt.Sprint(n.AdminAddr()))
	return serveSignals(n, "", nil)
}

// isOriginFlag reports whether a run argument asks for the quickstart
// config instead of a file.
func isOriginFlag(arg string) bool {
	name, _, _ := strings.Cut(strings.TrimLeft(arg, "-"), "=")
	return strings.HasPrefix(arg, "-") && name == "origin"
}

// config returns the commented config text.
func (q *quickstart) config() (string, error) {
	if q.origin == "" {
		return "", errors.New("--origin URL is required")
	}
	u, err := url.Parse(q.origin)
	if err != nil {
		return "", fmt.Errorf("--origin: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", fmt.Errorf("--origin %q: want http://HOST[:PORT] or https://HOST[:PORT], without a path", q.origin)
	}
	host, port := u.Hostname(), u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var b strings.Builder
	b.WriteString(quickstartHead)
	if len(q.domains) == 0 {
		fmt.Fprintf(&b, listenPlain, strconv.Quote(q.listen))
	} else {
		email := ""
		if q.email != "" {
			email = "\n        email: " + strconv.Quote(q.email)
		}
		fmt.Fprintf(&b, listenACME, quoteList(q.domains), email)
	}
	fmt.Fprintf(&b, quickstartAdmin, strconv.Quote(q.admin))
	fmt.Fprintf(&b, quickstartOrigin, q.origin, strconv.Quote(net.JoinHostPort(host, port)))
	if u.Scheme == "https" {
		fmt.Fprintf(&b, "    tls: {enabled: true}          # the origin's certificate is verified for %s\n", host)
	}
	b.WriteString(quickstartRoute)
	if net.ParseIP(host) == nil {
		fmt.Fprintf(&b, quickstartHost, strconv.Quote(host))
	}
	b.WriteString(quickstartRest)
	return b.String(), nil
}

func quoteList(s []string) string {
	q := make([]string, len(s))
	for i, v := range s {
		q[i] = strconv.Quote(v)
	}
	return "[" + strings.Join(q, ", ") + "]"
}

const quickstartHead = `# Outpost config written by "outpost quickstart".
# Check it with "outpost validate -c FILE"; run it with "outpost run -c FILE";
# after an edit, SIGHUP (systemctl reload outpost) applies it without a restart.
# Every key is described in docs/config.md.

`

const listenPlain = `# Where clients connect: cleartext HTTP/1.1 and h2c.
listeners:
  - addr: %s
`

const listenACME = `# Where clients connect: HTTPS on :443 with certificates obtained and renewed
# automatically from Let's Encrypt (ACME), kept in the state directory; and
# :80, which answers the CA's HTTP-01 checks and redirects the rest to https.
# Binding ports below 1024 needs CAP_NET_BIND_SERVICE (see examples/systemd).
listeners:
  - addr: ":443"
    tls:
      acme:
        domains: %s%s
  - addr: ":80"
    redirect_https: true
`

const quickstartAdmin = `
# The admin API (purge, reload, status, metrics), on loopback. No token is
# named: at first start the node generates one into admin-token in its state
# directory (mode 0600), which "outpost purge" reads; send it as
# "Authorization: Bearer TOKEN".
admin:
  addr: %s
`

const quickstartOrigin = `
# The origin: %s
upstreams:
  origin:
    servers: [{addr: %s}]
`

const quickstartRoute = `
# One route: every request goes to the origin through the cache, which
# follows the origin's Cache-Control, Expires and Vary (RFC 9111): a response
# that gives no lifetime is not stored, a private one is never stored.
# A stale object is served for up to an hour when the origin fails.
routes:
  - name: origin
    upstream: origin
    cache:
      enabled: true
      stale_if_error: 1h
`

const quickstartHost = `    headers:
      request_set: {Host: %s}   # the origin's own name, not the client's
`

const quickstartRest = `
# Protection: each client (an IPv4 address or an IPv6 /64) may send 100
# requests a second, with bursts of 200, and have 64 in flight; more get 429.
protection:
  in_flight_per_client: 64
  limits:
    - name: per-client
      rate: 100
      burst: 200
  rules:
    - name: per-client-rate
      action: rate_limit
      limit: per-client
limits:
  max_conns_per_ip: 256

# The cache: 256MiB in memory. For a disk tier as well, add
#   disk: {path: /var/cache/outpost, size: 10GiB}
storage:
  memory: {size: 256MiB}

# One JSON line per request on stdout (the journal, under systemd).
log:
  access: stdout

# OpenTelemetry: a span per request, with a child per origin fetch, sent to
# a collector over OTLP. Off; uncomment to turn it on.
# otel:
#   endpoint: 127.0.0.1:4317     # grpc; or protocol: http, endpoint: http://127.0.0.1:4318/v1/traces
#   insecure: true
#   sample_ratio: 0.1            # failed requests are exported whatever the ratio
`
