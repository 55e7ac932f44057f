package guard

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/outpost-edge/outpost/limit"
)

// Action is what to do with a request.
type Action uint8

const (
	ActionNone      Action = iota // no rule matched: carry on
	ActionAllow                   // let it through, skipping later rules
	ActionDeny                    // answer 403
	ActionTarpit                  // answer slowly (Verdict.Delay), then 403
	ActionChallenge               // answer with the proof-of-work page unless it holds a pass
	ActionRateLimit               // count it against Verdict.Limit; refuse over the limit
)

var actionNames = [...]string{"none", "allow", "deny", "tarpit", "challenge", "rate_limit"}

func (a Action) String() string {
	if int(a) < len(actionNames) {
		return actionNames[a]
	}
	return fmt.Sprintf("Action(%d)", a)
}

// ParseAction returns the action named s, as String spells it.
func ParseAction(s string) (Action, error) {
	for i, n := range actionNames {
		if n == s && i != int(ActionNone) {
			return Action(i), nil
		}
	}
	return ActionNone, fmt.Errorf("%w: unknown action %q", ErrBadRule, s)
}

// DefaultTarpit is the delay of a tarpit rule that sets none.
const DefaultTarpit = 10 * time.Second

// ErrBadRule is returned by NewRules for a rule that cannot work.
var ErrBadRule = errors.New("guard: invalid rule")

// Rule is one entry of a rule list: conditions, all of which must hold,
// and the action to take when they do. A rule with no condition matches
// every request.
type Rule struct {
	// Name identifies the rule in verdicts, logs and metrics. Required.
	Name   string
	Action Action
	// Delay is how long a tarpit holds the answer. Default DefaultTarpit.
	Delay time.Duration
	// Limit names the rate limit an ActionRateLimit rule counts against.
	Limit string

	// IPs: the client address is within one of these prefixes.
	IPs []netip.Prefix
	// UserAgents: the User-Agent contains one of these, ignoring ASCII
	// case. An empty string matches a missing User-Agent.
	UserAgents []string
	// UserAgentRegexp: the User-Agent matches this regular expression
	// (RE2 syntax).
	UserAgentRegexp string
	// JA4 and JA4H: the fingerprint equals one of these, or starts with
	// one ending in "*" ("t13d*").
	JA4, JA4H []string
	// PathPrefixes: the request path starts with one of these.
	PathPrefixes []string
	// Anomalies: the request shows at least one of these.
	Anomalies Anomaly
	// Match is a condition written in Go (or compiled from an expression
	// language by the caller). It must be safe for concurrent use.
	Match func(*Attrs) bool
	// RateOver: the requests that meet every other condition of the rule,
	// counted per key over a sliding interval, exceed a threshold. It is
	// checked last, so it counts only the requests the rule is about.
	RateOver *RateOver
}

// RateKey is what a RateOver condition counts requests by.
type RateKey uint8

const (
	ByClient    RateKey = iota // client address (IPv6: its /64), see limit.ClientKey
	ByJA4                      // TLS fingerprint
	ByJA4H                     // HTTP fingerprint
	ByUserAgent                // User-Agent value
)

var rateKeyNames = [...]string{"client", "ja4", "ja4h", "user_agent"}

func (k RateKey) String() string {
	if int(k) < len(rateKeyNames) {
		return rateKeyNames[k]
	}
	return fmt.Sprintf("RateKey(%d)", k)
}

// RateOver is a rule condition on request rates, estimated with a
// count-min sketch (limit.Rate): it holds when a key made more than Count
// requests within the last Interval. A request without the key (no JA4 over
// plain HTTP, no User-Agent) does not meet the condition. Estimates err high
// when the sketch is crowded, so give Width room for the keys active at
// once.
type RateOver struct {
	Count int
	// Interval is the window Count is measured over. Default one second.
	Interval time.Duration
	By       RateKey
	// Width is the number of counters per sketch row (see limit.NewRate);
	// zero means 1<<16.
	Width int
	// Estimator, when set, is used instead of a new one, so that counts
	// survive a reload that rebuilds the rules. Interval and Width are
	// then ignored.
	Estimator *limit.Rate
}

// Verdict is the outcome of evaluating the rules for one request.
type Verdict struct {
	Action Action
	Rule   string        // the rule that decided; "" for ActionNone
	Limit  string        // for ActionRateLimit
	Delay  time.Duration // for ActionTarpit
	// Next is where to resume with EvaluateFrom once a rate-limited
	// request turns out to be within its limit.
	Next int
}

// Rules is a compiled, read-only rule list, safe for concurrent use.
type Rules struct {
	rules []compiled
}

type compiled struct {
	Rule
	ips      *PrefixSet
	agents   []string // lowercased
	agentRE  *regexp.Regexp
	reLits   []string    // agentRE as plain substrings, when it is only that
	reFold   bool        // reLits are lowercase and compared ignoring case
	rate     *limit.Rate // for RateOver
	verdict  Verdict
	anyAgent bool // agents holds ""
}

// NewRules checks and compiles rules, in order.
func NewRules(rules []Rule) (*Rules, error) {
	rs := &Rules{rules: make([]compiled, 0, len(rules))}
	for i, r := range rules {
		c, err := compile(r, i)
		if err != nil {
			return nil, err
		}
		rs.rules = append(rs.rules, c)
	}
	return rs, nil
}

func compile(r Rule, i int) (compiled, error) {
	c := compiled{Rule: r}
	switch {
	case r.Name == "":
		return c, fmt.Errorf("%w: rule %d has no name", ErrBadRule, i)
	case r.Action == ActionNone || int(r.Action) >= len(actionNames):
		return c, fmt.Errorf("%w %q: no action", ErrBadRule, r.Name)
	case r.Action == ActionRateLimit && r.Limit == "":
		return c, fmt.Errorf("%w %q: rate_limit names no limit", ErrBadRule, r.Name)
	}
	if r.Action == ActionTarpit && c.Delay <= 0 {
		c.Delay = DefaultTarpit
	}
	if len(r.IPs) > 0 {
		c.ips = NewPrefixSet(r.IPs...)
	}
	for _, ua := range r.UserAgents {
		c.agents = append(c.agents, strings.ToLower(ua))
		c.anyAgent = c.anyAgent || ua == ""
	}
	if r.UserAgentRegexp != "" {
		re, err := regexp.Compile(r.UserAgentRegexp)
		if err != nil {
			return c, fmt.Errorf("%w %q: user agent pattern: %w", ErrBadRule, r.Name, err)
		}
		c.agentRE = re
		c.reLits, c.reFold = literalAlternation(r.UserAgentRegexp)
	}
	if r.RateOver != nil {
		if r.RateOver.Count < 0 || r.RateOver.By > ByUserAgent {
			return c, fmt.Errorf("%w %q: rate condition needs a count of 0 or more and a known key", ErrBadRule, r.Name)
		}
		c.rate = r.RateOver.Estimator
		if c.rate == nil {
			c.rate = limit.NewRate(r.RateOver.Interval, r.RateOver.Width)
		}
	}
	c.verdict = Verdict{Action: r.Action, Rule: r.Name, Limit: r.Limit, Delay: c.Delay, Next: i + 1}
	return c, nil
}

// Len returns the number of rules.
func (rs *Rules) Len() int { return len(rs.rules) }

// Evaluate returns the verdict of the first rule that matches a, or
// ActionNone when none does.
func (rs *Rules) Evaluate(a *Attrs) Verdict { return rs.EvaluateFrom(a, 0) }

// EvaluateFrom is Evaluate starting at rule index start (a Verdict's Next).
func (rs *Rules) EvaluateFrom(a *Attrs, start int) Verdict {
	for i := max(start, 0); i < len(rs.rules); i++ {
		if rs.rules[i].matches(a) {
			return rs.rules[i].verdict
		}
	}
	return Verdict{Next: len(rs.rules)}
}

// matches checks the cheap conditions first, then the hook, and the rate
// last, since checking it counts the request.
func (c *compiled) matches(a *Attrs) bool {
	if c.ips != nil && !c.ips.Contains(a.IP) {
		return false
	}
	if len(c.PathPrefixes) > 0 && !hasAnyPrefix(a.path(), c.PathPrefixes) {
		return false
	}
	if c.Anomalies != 0 && a.Anomalies()&c.Anomalies == 0 {
		return false
	}
	if len(c.JA4) > 0 && !matchesAny(a.JA4, c.JA4) {
		return false
	}
	if len(c.JA4H) > 0 && !matchesAny(b2s(a.JA4H()), c.JA4H) {
		return false
	}
	if len(c.agents) > 0 && !c.agentMatches(a) {
		return false
	}
	if c.agentRE != nil && !c.agentPatternMatches(a) {
		return false
	}
	if c.Match != nil && !c.Match(a) {
		return false
	}
	return c.rate == nil || c.rateExceeded(a)
}

// rateExceeded counts a's request and reports whether its key is over the
// rule's rate.
func (c *compiled) rateExceeded(a *Attrs) bool {
	var buf [16]byte
	var key []byte
	switch c.RateOver.By {
	case ByClient:
		key = limit.ClientKey(buf[:0], a.IP)
	case ByJA4:
		key = unsafe.Slice(unsafe.StringData(a.JA4), len(a.JA4))
	case ByJA4H:
		key = a.JA4H()
	case ByUserAgent:
		key = a.UserAgent()
	}
	return len(key) > 0 && c.rate.Sliding(key, 1, a.now()) > float64(c.RateOver.Count)
}

func (c *compiled) agentMatches(a *Attrs) bool {
	ua := a.lowerAgent()
	if len(ua) == 0 {
		return c.anyAgent
	}
	for _, s := range c.agents {
		if s != "" && bytes.Contains(ua, []byte(s)) {
			return true
		}
	}
	return false
}

// agentPatternMatches runs UserAgentRegexp, as plain substring searches
// when the pattern is a list of words ("(?i)bot|crawler|spider"): Go's
// regexp engine takes microseconds for that over a browser's User-Agent.
func (c *compiled) agentPatternMatches(a *Attrs) bool {
	if c.reLits == nil {
		return c.agentRE.Match(a.UserAgent())
	}
	ua := a.UserAgent()
	if c.reFold {
		ua = a.lowerAgent()
	}
	for _, lit := range c.reLits {
		if bytes.Contains(ua, []byte(lit)) {
			return true
		}
	}
	return false
}

// literalAlternation returns the words of a pattern that is only an
// alternation of ASCII literals, possibly in groups, lowercased when the pattern ignores case;
// nil when it is anything else.
func literalAlternation(pattern string) (words []string, fold bool) {
	re, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, false
	}
	for re.Op == syntax.OpCapture { // a group changes nothing Match reports
		re = re.Sub[0]
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpAlternate {
		subs = re.Sub
	}
	for i, sub := range subs {
		f := sub.Flags&syntax.FoldCase != 0
		if sub.Op != syntax.OpLiteral || i > 0 && f != fold {
			return nil, false
		}
		fold = f
		w := string(sub.Rune)
		for j := 0; j < len(w); j++ {
			if w[j] >= utf8.RuneSelf {
				return nil, false
			}
		}
		if fold {
			w = strings.ToLower(w)
		}
		words = append(words, w)
	}
	return words, fold
}

// matchesAny reports whether v equals one of patterns, or starts with one
// that ends in "*".
func matchesAny(v string, patterns []string) bool {
	for _, p := range patterns {
		if prefix, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(v, prefix) {
				return true
			}
		} else if v == p {
			return true
		}
	}
	return false
}

func hasAnyPrefix(b []byte, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(b2s(b), p) {
			return true
		}
	}
	return false
}
