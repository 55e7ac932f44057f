package config

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/limit"
)

// Protection classifies clients and defends the site against abuse: named
// rate limits, the bot rules of package guard, its proof-of-work challenge
// and the fingerprints sent to the origin. Connection limits live in
// Limits (max_conns, max_conns_per_ip). The zero Protection has no rules
// and no limits, and costs nothing per request.
type Protection struct {
	// InFlightPerClient is the most requests one client (an IPv4 address,
	// or an IPv6 /64) may have in flight at once, over all its
	// connections; further ones get 429. Default: 0, no limit.
	InFlightPerClient int `yaml:"in_flight_per_client"`
	// Limits are rate limits by name, for rules with action rate_limit.
	// Names are required and unique. Default: none.
	Limits []RateLimit `yaml:"limits"`
	// Rules are evaluated in order for every request; the first whose
	// conditions all hold decides, except that a rate_limit rule whose
	// request is within its limit lets evaluation go on. Default: none.
	Rules []Rule `yaml:"rules"`
	// Challenge configures the proof-of-work page of action challenge.
	Challenge Challenge `yaml:"challenge"`
	// FingerprintHeaders sends the client's fingerprints to the origin as
	// X-JA4 (TLS only) and X-JA4H. Default: false. JA4H is under the
	// FoxIO License 1.1; see package guard.
	FingerprintHeaders bool `yaml:"fingerprint_headers"`
	// GeoIP is the database for the country variable of expressions.
	GeoIP GeoIP `yaml:"geoip"`
}

func (p *Protection) setDefaults() { p.Challenge.setDefaults() }

// Rule is one entry of protection.rules; it maps field for field onto a
// guard.Rule (see GuardRules). Every condition that is set must hold; a
// rule with none matches every request.
type Rule struct {
	// Name identifies the rule in logs, metrics and traces. Required,
	// unique.
	Name string `yaml:"name"`
	// IPs: the client address is in one of these networks; a single
	// address means a /32 or /128. Default: any.
	IPs []netip.Prefix `yaml:"ips"`
	// UserAgents: the User-Agent contains one of these, ignoring ASCII
	// case; "" matches a request without one. Default: any.
	UserAgents []string `yaml:"user_agents"`
	// UserAgentRegex: the User-Agent matches this RE2 expression
	// (unanchored). Default: "", any.
	UserAgentRegex string `yaml:"user_agent_regex"`
	// JA4: the TLS fingerprint equals one of these, or starts with one
	// that ends in "*" ("t13d*"). Default: any.
	JA4 []string `yaml:"ja4"`
	// JA4H: the HTTP fingerprint equals one of these, or starts with one
	// that ends in "*". Default: any.
	JA4H []string `yaml:"ja4h"`
	// PathPrefixes: the path starts with one of these. Default: any.
	PathPrefixes []string `yaml:"path_prefixes"`
	// Anomalies: the request head shows one of these (see
	// guard.AnomalyNames: no_user_agent, browser_no_accept,
	// browser_no_language, browser_no_encoding, browser_http10).
	// Default: any.
	Anomalies []Anomaly `yaml:"anomalies"`
	// Expr is a condition in the expression language of package
	// config/expr, compiled into Condition. Default: "", none.
	Expr string `yaml:"expr"`
	// RateOver: the requests meeting the other conditions exceed a rate,
	// per client, fingerprint or User-Agent. Default: nil, none.
	RateOver *RateOver `yaml:"rate_over"`
	// Action is allow, deny, tarpit, challenge or rate_limit. Required.
	Action Action `yaml:"action"`
	// Delay is how long a tarpit holds its answer, up to 1m. Default: 0,
	// guard.DefaultTarpit (10s). Only with action tarpit.
	Delay time.Duration `yaml:"delay"`
	// Limit names the entry of protection.limits a rate_limit rule counts
	// against. Required with action rate_limit, refused otherwise.
	Limit string `yaml:"limit"`

	// Condition is Expr compiled by Provision; nil when Expr is "".
	Condition *expr.Program `yaml:"-"`
}

// RateOver is a rule condition on request rates (guard.RateOver).
type RateOver struct {
	// Count is the number of requests per Interval above which the
	// condition holds. Required, positive.
	Count int `yaml:"count"`
	// Interval is the sliding window Count is measured over. Default: 1s.
	Interval time.Duration `yaml:"interval"`
	// By is what requests are counted by: client (IPv4 address or IPv6
	// /64), ja4, ja4h or user_agent. Default: client.
	By RateBy `yaml:"by"`
	// Width is the number of counters per row of the count-min sketch,
	// rounded up to a power of two: a few times the keys active within
	// an Interval. Memory is 32 bytes per unit. Default: 0, 65536 (2MiB).
	Width int `yaml:"width"`
}

func (r *RateOver) setDefaults() { r.Interval = time.Second }

// Challenge configures the proof-of-work challenge (guard.Challenge).
type Challenge struct {
	// SecretFile holds the key that signs challenges and pass cookies, at
	// least 16 bytes once surrounding white space is trimmed. Nodes that
	// share it accept each other's passes. Default: "", see SecretEnv.
	SecretFile string `yaml:"secret_file"`
	// SecretEnv names an environment variable holding the key instead.
	// Default: "". With neither set, each process draws a random key,
	// and passes end when it restarts.
	SecretEnv string `yaml:"secret_env"`
	// Difficulty is the number of leading zero bits the browser must
	// find, 1 to 32; each bit doubles the work. Default: 16.
	Difficulty int `yaml:"difficulty"`
	// TTL is how long a pass cookie lasts. Default: 24h.
	TTL time.Duration `yaml:"ttl"`
	// CookieName is the pass cookie's name. Default: "__outpost_pass".
	CookieName string `yaml:"cookie_name"`
	// VerifyPath is where the page posts its answer; the engine answers
	// it on every host. Default: "/.outpost/challenge".
	VerifyPath string `yaml:"verify_path"`
}

func (c *Challenge) setDefaults() {
	*c = Challenge{Difficulty: guard.DefaultDifficulty, TTL: guard.DefaultPassTTL,
		CookieName: guard.DefaultCookieName, VerifyPath: guard.DefaultVerifyPath}
}

func (c *Challenge) fillZero() {
	setZero(&c.Difficulty, guard.DefaultDifficulty)
	setZero(&c.TTL, guard.DefaultPassTTL)
	setZero(&c.CookieName, guard.DefaultCookieName)
	setZero(&c.VerifyPath, guard.DefaultVerifyPath)
}

// minSecret is the shortest challenge secret accepted, as guard requires.
const minSecret = 16

// Secret reads the challenge key from SecretFile or SecretEnv, trimming
// white space; nil when neither is set.
func (c *Challenge) Secret() ([]byte, error) {
	var secret []byte
	switch {
	case c.SecretFile != "":
		b, err := os.ReadFile(c.SecretFile)
		if err != nil {
			return nil, fmt.Errorf("config: challenge secret: %w", err)
		}
		secret = bytes.TrimSpace(b)
	case c.SecretEnv != "":
		secret = []byte(strings.TrimSpace(os.Getenv(c.SecretEnv)))
	default:
		return nil, nil
	}
	if len(secret) < minSecret {
		return nil, fmt.Errorf("config: challenge secret is %d bytes; at least %d needed", len(secret), minSecret)
	}
	return secret, nil
}

// GuardChallenge returns the guard.Challenge these settings describe, with
// its secret read; the caller sets ClientIP and Page if needed and calls
// Provision.
func (c *Challenge) GuardChallenge() (*guard.Challenge, error) {
	secret, err := c.Secret()
	if err != nil {
		return nil, err
	}
	return &guard.Challenge{Secret: secret, Difficulty: c.Difficulty, TTL: c.TTL,
		CookieName: c.CookieName, VerifyPath: c.VerifyPath}, nil
}

// GeoIP names the country database.
type GeoIP struct {
	// Database is a MaxMind-format (.mmdb) country database, relative to
	// the config file. Default: "", no database: country is always "".
	// Every reload reopens it, so a database replaced in place (or a new
	// path) is picked up by a reload; adding or removing the database
	// needs a restart.
	Database string `yaml:"database"`
}

// Action is what a rule does, written as guard.Action's names: allow,
// deny, tarpit, challenge or rate_limit. The zero Action is unset.
type Action guard.Action

// UnmarshalText parses an action name.
func (a *Action) UnmarshalText(text []byte) error {
	s := string(text)
	if s == "" {
		*a = 0
		return nil
	}
	ga, err := guard.ParseAction(s)
	if err != nil {
		names := actionNames()
		return fmt.Errorf("unknown action %q: want %s%s", s, strings.Join(names, ", "), suggest(s, names))
	}
	*a = Action(ga)
	return nil
}

// MarshalText writes the action's name, "" when unset.
func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// String is the action's name, "" when unset.
func (a Action) String() string {
	if a == 0 {
		return ""
	}
	return guard.Action(a).String()
}

// actionNames lists the names guard.ParseAction accepts.
func actionNames() []string {
	var names []string
	for a := guard.ActionNone + 1; ; a++ {
		if _, err := guard.ParseAction(a.String()); err != nil {
			return names
		}
		names = append(names, a.String())
	}
}

// Anomaly is one of guard's header anomalies, written by its name.
type Anomaly guard.Anomaly

// UnmarshalText parses an anomaly name.
func (m *Anomaly) UnmarshalText(text []byte) error {
	s := string(text)
	a, err := guard.ParseAnomaly(s)
	if err != nil {
		names := guard.AnomalyNames()
		return fmt.Errorf("unknown anomaly %q: want %s%s", s, strings.Join(names, ", "), suggest(s, names))
	}
	*m = Anomaly(a)
	return nil
}

// MarshalText writes the anomaly's name.
func (m Anomaly) MarshalText() ([]byte, error) { return []byte(guard.Anomaly(m).String()), nil }

// RateBy is what a rate condition counts requests by (guard.RateKey).
type RateBy guard.RateKey

var rateByNames = [...]string{guard.ByClient: "client", guard.ByJA4: "ja4", guard.ByJA4H: "ja4h", guard.ByUserAgent: "user_agent"}

// UnmarshalText parses client, ja4, ja4h or user_agent.
func (b *RateBy) UnmarshalText(text []byte) error {
	s := string(text)
	for i, n := range rateByNames {
		if n == s {
			*b = RateBy(i)
			return nil
		}
	}
	return fmt.Errorf("unknown rate key %q: want %s%s", s, strings.Join(rateByNames[:], ", "), suggest(s, rateByNames[:]))
}

// MarshalText writes the key's name.
func (b RateBy) MarshalText() ([]byte, error) {
	if int(b) >= len(rateByNames) {
		return nil, fmt.Errorf("config: unknown rate key %d", b)
	}
	return []byte(rateByNames[b]), nil
}

// Limit returns the limit.Limit r describes; the caller keys it by r.Key.
func (r *RateLimit) Limit() limit.Limit {
	return limit.Limit{Name: r.Name, Rate: r.Rate, Period: r.Per, Burst: r.Burst}
}

// FindLimit returns the limit named name, nil when there is none.
func (p *Protection) FindLimit(name string) *RateLimit {
	for i := range p.Limits {
		if p.Limits[i].Name == name {
			return &p.Limits[i]
		}
	}
	return nil
}

// ErrNotProvisioned is returned by GuardRules for rules whose expressions
// were not compiled.
var ErrNotProvisioned = errors.New("config: protection rules are not provisioned")

// GuardRules returns the rules as guard.Rules, in order, ready for
// guard.NewRules. Expressions become Match functions that read the country
// through geo (nil: none) and report evaluation errors to onError (nil:
// ignored); a rule whose expression fails does not match. RateOver
// estimators are left nil: to keep counts across a reload, set them from
// the old rules.
func (p *Protection) GuardRules(geo expr.Geo, onError func(rule string, err error)) ([]guard.Rule, error) {
	rules := make([]guard.Rule, len(p.Rules))
	for i := range p.Rules {
		r := &p.Rules[i]
		if r.Expr != "" && r.Condition == nil {
			return nil, fmt.Errorf("%w: rule %q", ErrNotProvisioned, r.Name)
		}
		rules[i] = r.guardRule(geo, onError)
	}
	return rules, nil
}

func (r *Rule) guardRule(geo expr.Geo, onError func(rule string, err error)) guard.Rule {
	g := guard.Rule{
		Name: r.Name, Action: guard.Action(r.Action), Delay: r.Delay, Limit: r.Limit,
		UserAgents: r.UserAgents, UserAgentRegexp: r.UserAgentRegex,
		JA4: r.JA4, JA4H: r.JA4H, PathPrefixes: r.PathPrefixes,
	}
	g.IPs = r.IPs
	for _, a := range r.Anomalies {
		g.Anomalies |= guard.Anomaly(a)
	}
	if r.Condition != nil {
		var report func(error)
		if onError != nil {
			name := r.Name
			report = func(err error) { onError(name, err) }
		}
		g.Match = r.Condition.Matcher(geo, report)
	}
	if ro := r.RateOver; ro != nil {
		g.RateOver = &guard.RateOver{Count: ro.Count, Interval: ro.Interval, By: guard.RateKey(ro.By), Width: ro.Width}
	}
	return g
}
