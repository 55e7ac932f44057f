package config

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"regexp/syntax"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/guard"
)

// condition compiles a condition expression; nil for "".
func (k *checker) condition(key, src string) *expr.Program {
	if src == "" {
		return nil
	}
	return k.compile(key, src, expr.Compile)
}

// keyProgram compiles the expression of an expr:SOURCE rate limit key.
func (k *checker) keyProgram(key string, r *RateLimit) {
	r.KeyProgram = nil
	if r.Key.Kind == KeyExpr {
		r.KeyProgram = k.compile(key, r.Key.Name, expr.CompileString)
	}
}

func (k *checker) compile(key, src string, compile func(string) (*expr.Program, error)) *expr.Program {
	p, err := compile(src)
	if err != nil {
		k.errorf(key, "%v", err)
	}
	return p
}

func (k *checker) provisionProtection() {
	p := &k.c.Protection
	p.Challenge.fillZero()
	k.resolve(&p.Challenge.SecretFile)
	k.resolve(&p.GeoIP.Database)
	for i := range p.Limits {
		setZero(&p.Limits[i].Key, KeySource{Kind: KeyClientIP})
		setZero(&p.Limits[i].Action, LimitReject)
		k.keyProgram(fmt.Sprintf("protection.limits[%d].key", i), &p.Limits[i])
	}
	for i := range p.Rules {
		r := &p.Rules[i]
		r.Condition = k.condition(fmt.Sprintf("protection.rules[%d].expr", i), r.Expr)
		if r.RateOver != nil {
			setZero(&r.RateOver.Interval, time.Second)
		}
	}
}

// maxTarpit bounds a tarpit's delay: each held request keeps a connection
// and a goroutine, so long delays hurt the proxy more than the client.
const maxTarpit = time.Minute

func (k *checker) protection() {
	p := &k.c.Protection
	limits := map[string]int{}
	var limitNames []string
	for i := range p.Limits {
		l := &p.Limits[i]
		key := fmt.Sprintf("protection.limits[%d]", i)
		k.rateLimit(key, l)
		switch first, dup := limits[l.Name]; {
		case l.Name == "":
			k.errorf(key+".name", "is required")
		case dup:
			k.errorf(key+".name", "duplicate limit name %q (also protection.limits[%d])", l.Name, first)
		case !plainName.MatchString(l.Name):
			k.errorf(key+".name", "limit name %q must be letters, digits, '_', '-' or '.'", l.Name)
		default:
			limits[l.Name] = i
			limitNames = append(limitNames, l.Name)
		}
		if l.Rate > 0 && l.Per > 0 {
			if err := l.Limit().Validate(); err != nil {
				k.errorf(key, "%s", strings.TrimPrefix(err.Error(), "limit: "))
			}
		}
	}
	rules := map[string]int{}
	catchAll := -1
	for i := range p.Rules {
		r := &p.Rules[i]
		key := fmt.Sprintf("protection.rules[%d]", i)
		if catchAll >= 0 && catchAll == i-1 {
			k.errorf(key, "is never reached: protection.rules[%d] (%q) before it decides every request", catchAll, p.Rules[catchAll].Name)
		}
		if catchAll < 0 && r.matchesAll() && guard.Action(r.Action) != guard.ActionRateLimit {
			catchAll = i
		}
		switch first, dup := rules[r.Name]; {
		case r.Name == "":
			k.errorf(key+".name", "is required")
		case dup:
			k.errorf(key+".name", "duplicate rule name %q (also protection.rules[%d])", r.Name, first)
		case !plainName.MatchString(r.Name):
			k.errorf(key+".name", "rule name %q must be letters, digits, '_', '-' or '.'", r.Name)
		default:
			rules[r.Name] = i
		}
		k.rule(key, r, limits, limitNames)
	}
	k.challenge("protection.challenge", &p.Challenge)
	k.file("protection.geoip.database", p.GeoIP.Database, false)
}

// matchesAll reports whether r sets no condition at all.
func (r *Rule) matchesAll() bool {
	return len(r.IPs) == 0 && len(r.UserAgents) == 0 && r.UserAgentRegex == "" && len(r.JA4) == 0 &&
		len(r.JA4H) == 0 && len(r.PathPrefixes) == 0 && len(r.Anomalies) == 0 && r.Expr == "" && r.RateOver == nil
}

func (k *checker) rule(key string, r *Rule, limits map[string]int, limitNames []string) {
	action := guard.Action(r.Action)
	switch {
	case r.Action == 0 && k.c.lines[key+".action"] == 0: // else the decoder has said what is wrong
		k.errorf(key+".action", "is required: want %s", strings.Join(actionNames(), ", "))
	case action == guard.ActionRateLimit && r.Limit == "":
		k.errorf(key+".limit", "is required with action rate_limit: name one of protection.limits")
	case action == guard.ActionRateLimit:
		if _, ok := limits[r.Limit]; !ok {
			k.errorf(key+".limit", "unknown limit %q%s", r.Limit, suggest(r.Limit, limitNames))
		}
	case r.Limit != "":
		k.errorf(key+".limit", "is only used with action rate_limit")
	}
	if r.Action == 0 {
		return
	}
	switch {
	case r.Delay != 0 && action != guard.ActionTarpit:
		k.errorf(key+".delay", "is only used with action tarpit")
	case r.Delay > maxTarpit:
		k.errorf(key+".delay", "must be at most %v, got %v", maxTarpit, r.Delay)
	}
	if r.UserAgentRegex != "" {
		if _, err := regexp.Compile(r.UserAgentRegex); err != nil {
			var se *syntax.Error
			if errors.As(err, &se) {
				err = fmt.Errorf("%s: `%s`", se.Code, se.Expr)
			}
			k.errorf(key+".user_agent_regex", "bad regular expression: %v", err)
		}
	}
	k.fingerprints(key+".ja4", r.JA4)
	k.fingerprints(key+".ja4h", r.JA4H)
	for i, prefix := range r.PathPrefixes {
		if !strings.HasPrefix(prefix, "/") {
			k.errorf(fmt.Sprintf("%s.path_prefixes[%d]", key, i), "must start with /")
		}
	}
	if ro := r.RateOver; ro != nil {
		if ro.Count <= 0 {
			k.errorf(key+".rate_over.count", "must be positive")
		}
		if ro.Interval <= 0 {
			k.errorf(key+".rate_over.interval", "must be positive")
		}
		if ro.Width != 0 && (ro.Width < 64 || ro.Width > 1<<24) {
			k.errorf(key+".rate_over.width", "must be from 64 to %d, got %d", 1<<24, ro.Width)
		}
	}
}

// fingerprint is a JA4 or JA4H value, or a prefix of one ending in "*".
var fingerprint = regexp.MustCompile(`^[A-Za-z0-9_]*\*?$`)

func (k *checker) fingerprints(key string, list []string) {
	for i, f := range list {
		if f == "" || !fingerprint.MatchString(f) {
			k.errorf(fmt.Sprintf("%s[%d]", key, i), "bad fingerprint %q: want letters, digits and '_', with an optional '*' at the end", f)
		}
	}
}

func (k *checker) challenge(key string, c *Challenge) {
	if c.SecretFile != "" && c.SecretEnv != "" {
		k.errorf(key+".secret_env", "set secret_file or secret_env, not both")
	}
	if c.SecretEnv != "" && !envName.MatchString(c.SecretEnv) {
		k.errorf(key+".secret_env", "%q is not an environment variable name", c.SecretEnv)
	}
	k.file(key+".secret_file", c.SecretFile, false)
	if fi, err := os.Stat(c.SecretFile); err == nil && fi.Mode().IsRegular() && fi.Size() < minSecret {
		k.errorf(key+".secret_file", "%s holds %d bytes; a secret needs at least %d", c.SecretFile, fi.Size(), minSecret)
	}
	k.intRange(key+".difficulty", c.Difficulty, 1, 32)
	if c.TTL <= 0 {
		k.errorf(key+".ttl", "must be positive")
	}
	if !isToken(c.CookieName) {
		k.errorf(key+".cookie_name", "%q is not a valid cookie name", c.CookieName)
	}
	if !strings.HasPrefix(c.VerifyPath, "/") {
		k.errorf(key+".verify_path", "must start with /")
	}
	k.pathChars(key+".verify_path", c.VerifyPath)
}
