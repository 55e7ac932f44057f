package config

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/httphead"
)

// badProtection are protection sections that must fail, with the exact
// error text (file name shortened to bad.yaml).
var badProtection = []struct {
	name, yaml, want string
}{
	{"unknown action",
		"protection:\n  rules:\n    - {name: a, action: block}\n",
		`bad.yaml:3: protection.rules[0].action: unknown action "block": want allow, deny, tarpit, challenge, rate_limit`},
	{"misspelt action",
		"protection:\n  rules:\n    - {name: a, action: challnge}\n",
		`bad.yaml:3: protection.rules[0].action: unknown action "challnge": want allow, deny, tarpit, challenge, rate_limit (did you mean "challenge"?)`},
	{"missing action and name",
		"protection:\n  rules:\n    - {ips: [10.0.0.0/8]}\n",
		"bad.yaml:3: protection.rules[0].name: is required\n" +
			"bad.yaml:3: protection.rules[0].action: is required: want allow, deny, tarpit, challenge, rate_limit"},
	{"unknown anomaly",
		"protection:\n  rules:\n    - name: a\n      action: deny\n      anomalies: [no_user_agent, no_accept_language]\n",
		`bad.yaml:5: protection.rules[0].anomalies[1]: unknown anomaly "no_accept_language": want no_user_agent, browser_no_accept, browser_no_language, browser_no_encoding, browser_http10`},
	{"rate_limit without a limit",
		"protection:\n  rules:\n    - {name: a, action: rate_limit}\n",
		`bad.yaml:3: protection.rules[0].limit: is required with action rate_limit: name one of protection.limits`},
	{"rate_limit with an unknown limit",
		"protection:\n  limits:\n    - {name: anon, rate: 10}\n  rules:\n    - name: a\n      action: rate_limit\n      limit: anno\n",
		`bad.yaml:7: protection.rules[0].limit: unknown limit "anno" (did you mean "anon"?)`},
	{"limit with another action",
		"protection:\n  limits: [{name: anon, rate: 10}]\n  rules:\n    - {name: a, action: deny, limit: anon, ips: [10.0.0.1]}\n",
		`bad.yaml:4: protection.rules[0].limit: is only used with action rate_limit`},
	{"tarpit delay too long",
		"protection:\n  rules:\n    - {name: a, action: tarpit, delay: 1h}\n",
		`bad.yaml:3: protection.rules[0].delay: must be at most 1m0s, got 1h0m0s`},
	{"delay without tarpit",
		"protection:\n  rules:\n    - {name: a, action: deny, delay: 1s, ja4: [t13d*]}\n",
		`bad.yaml:3: protection.rules[0].delay: is only used with action tarpit`},
	{"bad user agent regex",
		"protection:\n  rules:\n    - name: a\n      action: deny\n      user_agent_regex: 'bot(|'\n",
		"bad.yaml:5: protection.rules[0].user_agent_regex: bad regular expression: missing closing ): `bot(|`"},
	{"bad CIDR",
		"protection:\n  rules:\n    - {name: a, action: deny, ips: [10.0.0.0/33]}\n",
		`bad.yaml:3: protection.rules[0].ips[0]: bad CIDR "10.0.0.0/33": want an address or a prefix such as 10.0.0.0/8`},
	{"bad fingerprint pattern",
		"protection:\n  rules:\n    - {name: a, action: deny, ja4h: ['ge*11']}\n",
		`bad.yaml:3: protection.rules[0].ja4h[0]: bad fingerprint "ge*11": want letters, digits and '_', with an optional '*' at the end`},
	{"bad expression",
		"protection:\n  rules:\n    - name: a\n      action: deny\n      expr: 'method == \"POST\" && ip_in(ip, \"10.0.0.0/40\")'\n",
		`bad.yaml:5: protection.rules[0].expr: column 31: ip_in: bad CIDR "10.0.0.0/40": want an address or a prefix such as 10.0.0.0/8`},
	{"bad rate condition",
		"protection:\n  rules:\n    - name: a\n      action: deny\n      rate_over: {by: asn, interval: 0s}\n",
		"bad.yaml:5: protection.rules[0].rate_over.by: unknown rate key \"asn\": want client, ja4, ja4h, user_agent\n" +
			"bad.yaml:5: protection.rules[0].rate_over.count: must be positive"},
	{"rule after a rule that decides everything",
		"protection:\n  rules:\n    - {name: all, action: challenge}\n    - {name: b, action: deny, ips: [10.0.0.1]}\n",
		`bad.yaml:4: protection.rules[1]: is never reached: protection.rules[0] ("all") before it decides every request`},
	{"duplicate rule and limit names",
		"protection:\n  limits: [{name: x, rate: 1}, {name: x, rate: 2}]\n  rules:\n    - {name: r, action: deny, ips: [10.0.0.1]}\n    - {name: r, action: deny, ips: [10.0.0.2]}\n",
		"bad.yaml:2: protection.limits[1].name: duplicate limit name \"x\" (also protection.limits[0])\n" +
			`bad.yaml:5: protection.rules[1].name: duplicate rule name "r" (also protection.rules[0])`},
	{"limit without name or rate",
		"protection:\n  limits:\n    - {key: route}\n",
		"bad.yaml:3: protection.limits[0].rate: must be positive\n" +
			"bad.yaml:3: protection.limits[0].name: is required"},
	{"limit whose burst takes too long",
		"protection:\n  limits:\n    - {name: slow, rate: 1, per: 1h, burst: 100}\n",
		`bad.yaml:3: protection.limits[0]: invalid limit "slow": burst 100 takes longer than 24h0m0s to refill`},
	{"challenge secret file missing, env as well",
		"protection:\n  challenge:\n    secret_file: nope.key\n    secret_env: 'SECRET-KEY'\n",
		"bad.yaml:3: protection.challenge.secret_file: file " + abs("testdata/nope.key") + " does not exist\n" +
			"bad.yaml:4: protection.challenge.secret_env: set secret_file or secret_env, not both\n" +
			`bad.yaml:4: protection.challenge.secret_env: "SECRET-KEY" is not an environment variable name`},
	{"challenge secret too short",
		"protection:\n  challenge: {secret_file: admin.token}\n",
		"bad.yaml:2: protection.challenge.secret_file: " + abs("testdata/admin.token") + " holds 11 bytes; a secret needs at least 16"},
	{"challenge out of range",
		"protection:\n  challenge: {difficulty: 40, verify_path: challenge}\n",
		"bad.yaml:2: protection.challenge.difficulty: must be from 1 to 32, got 40\n" +
			"bad.yaml:2: protection.challenge.verify_path: must start with /"},
	{"geoip database missing",
		"protection:\n  geoip: {database: GeoLite2-Country.mmdb}\n",
		"bad.yaml:2: protection.geoip.database: file " + abs("testdata/GeoLite2-Country.mmdb") + " does not exist"},
	{"limit key expression that is not a string",
		"protection:\n  limits:\n    - {name: a, rate: 1, key: 'expr:size(path)'}\n",
		`bad.yaml:3: protection.limits[0].key: column 1: expression has type int; a key must be string`},
	{"route expression of the wrong type",
		"routes:\n  - respond: {}\n    match:\n      expr: path\n",
		`bad.yaml:4: routes[0].match.expr: column 1: expression has type string; a condition must be bool`},
}

func TestProtectionErrorsNameFileLineAndKey(t *testing.T) {
	expectParseErrors(t, badProtection)
}

func TestFullConfigDecodesProtection(t *testing.T) {
	c, err := Load("testdata/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := &c.Protection
	if p.InFlightPerClient != 16 || !p.FingerprintHeaders || p.GeoIP.Database != abs("testdata/country.mmdb") {
		t.Errorf("protection = %+v", p)
	}
	if l := p.FindLimit("per-agent"); l == nil || l.Key != (KeySource{KeyHeader, "User-Agent"}) || l.Action != LimitLog ||
		l.Limit().Period != time.Minute || l.Limit().Burst != 0 {
		t.Errorf("limit per-agent = %+v", l)
	}
	if l := p.FindLimit("anon"); l == nil || l.Key.Kind != KeyClientIP || l.Action != LimitReject {
		t.Errorf("limit anon did not get defaults: %+v", l)
	}
	if p.FindLimit("nope") != nil {
		t.Error("FindLimit found a limit that does not exist")
	}
	r := p.Rules[1]
	if r.Condition == nil || r.Action != Action(guard.ActionChallenge) || len(r.Anomalies) != 2 ||
		r.RateOver.By != RateBy(guard.ByJA4) || r.RateOver.Interval != 2*time.Second {
		t.Errorf("rules[1] = %+v", r)
	}
	if ro := p.Rules[3].RateOver; ro.Interval != time.Second || ro.By != RateBy(guard.ByClient) {
		t.Errorf("rules[3].rate_over did not get defaults: %+v", ro)
	}
	ch := p.Challenge
	if ch.Difficulty != 18 || ch.TTL != time.Hour || ch.SecretFile != abs("testdata/challenge.secret") || ch.CookieName != "pass" {
		t.Errorf("challenge = %+v", ch)
	}
	g, err := ch.GuardChallenge()
	if err != nil || string(g.Secret) != "a-challenge-secret-of-32-bytes!!" || g.Difficulty != 18 {
		t.Fatalf("GuardChallenge = %+v, %v", g, err)
	}
	if err := g.Provision(); err != nil {
		t.Errorf("guard refuses the challenge: %v", err)
	}
	if c.Routes[0].RateLimits[4].KeyProgram == nil || c.Routes[0].RateLimits[0].KeyProgram != nil {
		t.Error("rate limit key expressions not compiled as they should")
	}
	if c.Routes[0].Match.Condition == nil || c.Routes[0].RateLimits[0].Name != "per-client" || c.Routes[0].RateLimits[1].Name != "packages.1" {
		t.Errorf("routes[0]: condition %v, rate limit names %q, %q", c.Routes[0].Match.Condition,
			c.Routes[0].RateLimits[0].Name, c.Routes[0].RateLimits[1].Name)
	}
}

func TestDefaultProtectionHoldsGuardDefaults(t *testing.T) {
	for _, c := range []*Config{Default(), {}} {
		if err := c.Provision(); err != nil {
			t.Fatal(err)
		}
		ch := c.Protection.Challenge
		if ch.Difficulty != guard.DefaultDifficulty || ch.TTL != guard.DefaultPassTTL || ch.CookieName != guard.DefaultCookieName ||
			ch.VerifyPath != guard.DefaultVerifyPath {
			t.Errorf("challenge = %+v", ch)
		}
		if secret, err := ch.Secret(); secret != nil || err != nil {
			t.Errorf("Secret() = %q, %v; want nil, nil", secret, err)
		}
		rules, err := c.Protection.GuardRules(nil, nil)
		if err != nil || len(rules) != 0 {
			t.Errorf("GuardRules = %v, %v", rules, err)
		}
	}
}

func TestChallengeSecretFromEnvironment(t *testing.T) {
	t.Setenv("OUTPOST_TEST_SECRET", "  0123456789abcdef0123\n")
	ch := Challenge{SecretEnv: "OUTPOST_TEST_SECRET"}
	if s, err := ch.Secret(); err != nil || string(s) != "0123456789abcdef0123" {
		t.Errorf("Secret() = %q, %v", s, err)
	}
	t.Setenv("OUTPOST_TEST_SECRET", "short")
	if _, err := ch.Secret(); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}

// request builds guard.Attrs for a request from ip with a User-Agent.
func request(ip, method, path, ua string) *guard.Attrs {
	req := &httphead.Request{ProtoMajor: 1, ProtoMinor: 1}
	req.SetLine([]byte(method), []byte(path), []byte("example.org"), []byte("https"))
	req.Header.AddString("Host", "example.org")
	if ua != "" {
		req.Header.AddString("User-Agent", ua)
	}
	a := &guard.Attrs{}
	a.Reset(netip.MustParseAddr(ip), "t13d1516h2_8daaf6152771_02713d6af862", req)
	return a
}

func TestGuardRulesDecideAsConfigured(t *testing.T) {
	const yml = `
protection:
  limits: [{name: anon, rate: 10}]
  rules:
    - {name: office, ips: [192.0.2.0/24], action: allow}
    - name: posts-from-outside
      expr: 'method == "POST" && !ip_in(ip, "10.0.0.0/8") && country != "FR"'
      action: deny
    - {name: tools, user_agents: [curl], path_prefixes: [/simple/], action: challenge}
    - {name: no-agent, anomalies: [no_user_agent], action: tarpit, delay: 2s}
    - {name: everyone, action: rate_limit, limit: anon}
`
	c, err := Parse("rules.yaml", []byte(yml))
	if err != nil {
		t.Fatal(err)
	}
	var evalErrs []string
	rules, err := c.Protection.GuardRules(geo("DE"), func(rule string, err error) { evalErrs = append(evalErrs, rule) })
	if err != nil {
		t.Fatal(err)
	}
	rs, err := guard.NewRules(rules)
	if err != nil {
		t.Fatalf("guard refuses the rules: %v", err)
	}
	tests := []struct {
		name string
		a    *guard.Attrs
		rule string
		want guard.Action
	}{
		{"office is allowed", request("192.0.2.9", "POST", "/", "curl/8"), "office", guard.ActionAllow},
		{"a POST from outside is denied", request("198.51.100.1", "POST", "/", "Mozilla/5.0"), "posts-from-outside", guard.ActionDeny},
		{"a POST from inside goes on", request("10.1.1.1", "POST", "/", "Mozilla/5.0"), "everyone", guard.ActionRateLimit},
		{"curl on /simple/ is challenged", request("198.51.100.1", "GET", "/simple/x/", "curl/8.5"), "tools", guard.ActionChallenge},
		{"no agent is tarpitted", request("198.51.100.1", "GET", "/", ""), "no-agent", guard.ActionTarpit},
	}
	for _, tt := range tests {
		v := rs.Evaluate(tt.a)
		if v.Rule != tt.rule || v.Action != tt.want {
			t.Errorf("%s: verdict %+v; want rule %q action %v", tt.name, v, tt.rule, tt.want)
		}
		if tt.want == guard.ActionTarpit && v.Delay != 2*time.Second {
			t.Errorf("%s: delay %v", tt.name, v.Delay)
		}
		if tt.want == guard.ActionRateLimit && v.Limit != "anon" {
			t.Errorf("%s: limit %q", tt.name, v.Limit)
		}
	}
	if len(evalErrs) != 0 {
		t.Errorf("evaluation errors from %v", evalErrs)
	}
}

type geo string

func (g geo) Country(netip.Addr) string { return string(g) }

func TestGuardRulesNeedProvisioning(t *testing.T) {
	p := Protection{Rules: []Rule{{Name: "x", Action: Action(guard.ActionDeny), Expr: "true"}}}
	if _, err := p.GuardRules(nil, nil); !errors.Is(err, ErrNotProvisioned) {
		t.Errorf("GuardRules on an unprovisioned rule: %v", err)
	}
}

func TestRouteConditionIsCompiled(t *testing.T) {
	c, err := Parse("r.yaml", []byte("routes:\n  - respond: {}\n    match: {expr: 'headers[\"x-tier\"] == \"gold\"'}\n"))
	if err != nil {
		t.Fatal(err)
	}
	a := request("192.0.2.1", "GET", "/", "")
	a.Request.Header.AddString("X-Tier", "gold")
	if !c.Routes[0].Match.Condition.Matcher(nil, nil)(a) {
		t.Error("the condition does not hold for a gold request")
	}
}

func TestActionNamesFollowGuard(t *testing.T) {
	want := []string{"allow", "deny", "tarpit", "challenge", "rate_limit"}
	if got := actionNames(); !reflect.DeepEqual(got, want) {
		t.Errorf("actionNames() = %v, want %v", got, want)
	}
}

func TestGoBuiltProtectionIsChecked(t *testing.T) {
	c := Default()
	c.Protection.Challenge.TTL = -time.Second
	c.Protection.Rules = []Rule{{Name: "r", Action: Action(guard.ActionDeny), RateOver: &RateOver{Count: 1, Interval: -time.Second}}}
	err := c.Provision()
	for _, want := range []string{"protection.challenge.ttl: must be positive", "protection.rules[0].rate_over.interval: must be positive"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Provision error %v; want it to contain %q", err, want)
		}
	}
}
