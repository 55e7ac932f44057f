package edge

import (
	"crypto/rand"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/limit"
	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/proxy"
)

// The protection layer runs the config's protection section in
// EarlyRequest, before routing, for every request: the in-flight limit per
// client, the challenge's verification endpoint, then the guard rules and
// the action of the rule that decides. Every decision is counted in
// outpost_guard_decisions_total and recorded in the trace (stage "guard");
// refusals also record the rule under stage "deny", which the access log
// reports.

// maxTarpits bounds the requests held by tarpit rules at once, over the
// whole process: each holds a goroutine and a connection, so past this
// many a tarpit rule denies at once instead.
const maxTarpits = 1024

// maxAnswer bounds the body read from a challenge answer; guard refuses
// longer ones anyway.
const maxAnswer = 4 << 10

// Outcomes of the protection layer, the action label of
// outpost_guard_decisions_total.
type guardOutcome uint8

const (
	outNone      guardOutcome = iota // no rule matched
	outAllow                         // an allow rule matched
	outDeny                          // 403
	outTarpit                        // held, then 403
	outChallenge                     // the challenge page was served
	outPassed                        // a challenge rule matched a client holding a valid pass
	outLimited                       // over a rate limit or the in-flight limit: 429
	outWithin                        // a rate_limit rule's request within its limit
	outLogged                        // over a log-only rate limit
	numOutcomes
)

var outcomeNames = [numOutcomes]string{"none", "allow", "deny", "tarpit", "challenge", "passed", "rate_limited", "within_limit", "limit_logged"}

// Pseudo-rule names for decisions no configured rule makes.
const (
	ruleNone     = "(none)"
	ruleInFlight = "in_flight_per_client"
	ruleVerify   = "challenge_verify"
)

// guardCounter counts one rule's decisions by outcome; it lives in Shared
// so that counts survive reloads.
type guardCounter struct {
	rule   string
	n      [numOutcomes]atomic.Uint64
	detail [numOutcomes]string // "rule guardOutcome", the trace detail, built once
}

func newGuardCounter(rule string) *guardCounter {
	g := &guardCounter{rule: rule}
	for i, o := range outcomeNames {
		g.detail[i] = rule + " " + o
	}
	return g
}

// guardCounter returns the counter of a rule, made on first use.
func (s *Shared) guardCounter(rule string) *guardCounter {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.guards[rule]
	if !ok {
		g = newGuardCounter(rule)
		s.guards[rule] = g
	}
	return g
}

// guardMetrics returns the decision counters that are not zero.
func (s *Shared) guardMetrics() []metrics.Value {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []metrics.Value
	for _, g := range s.guards {
		for o := range numOutcomes {
			if n := g.n[o].Load(); n > 0 {
				out = append(out, metrics.Value{Name: "outpost_guard_decisions_total", Help: "Protection decisions by rule and action.",
					Counter: true, Labels: []string{"rule", g.rule, "action", outcomeNames[o]}, V: float64(n)})
			}
		}
	}
	return out
}

// inFlight returns the per-client in-flight counter for a limit, kept
// across reloads while the limit stays the same. Tickets taken from a
// replaced counter go back to it, so a change never miscounts.
func (s *Shared) inFlight(perClient int) *limit.InFlight {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inflight == nil || s.inflight.PerKey != perClient {
		s.inflight = &limit.InFlight{PerKey: perClient}
	}
	return s.inflight
}

// challengeSecret returns the process's random challenge key, drawn on
// first use, for configs that set none: passes then survive reloads but
// not restarts.
func (s *Shared) challengeSecret() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.secret == nil {
		s.secret = make([]byte, 32)
		_, _ = rand.Read(s.secret) // crypto/rand.Read never fails
	}
	return s.secret
}

// protection is a config's protection section compiled for one App.
type protection struct {
	rules        *guard.Rules     // nil: no rules
	counters     []*guardCounter  // by rule index
	limits       []*rateLimit     // by rule index, for rate_limit rules
	challenge    *guard.Challenge // nil when no rule challenges
	inFlight     *limit.InFlight  // nil: no in-flight limit
	fingerprints bool
	tarpits      *atomic.Int64 // requests held now, over the process

	none, inFlightOver, verify *guardCounter
}

// buildProtection compiles p; nil when it asks for nothing.
func (s *Shared) buildProtection(p *config.Protection) (*protection, error) {
	if len(p.Rules) == 0 && p.InFlightPerClient == 0 && !p.FingerprintHeaders {
		return nil, nil
	}
	pr := &protection{fingerprints: p.FingerprintHeaders, tarpits: &s.tarpits,
		none: s.guardCounter(ruleNone), inFlightOver: s.guardCounter(ruleInFlight)}
	if p.InFlightPerClient > 0 {
		pr.inFlight = s.inFlight(p.InFlightPerClient)
	}
	if len(p.Rules) == 0 {
		return pr, nil
	}
	rules, err := p.GuardRules(s.Geo(), func(rule string, err error) {
		s.Log.Debug("protection rule expression failed", "rule", rule, "error", err)
	})
	if err != nil {
		return nil, err
	}
	pr.counters = make([]*guardCounter, len(rules))
	pr.limits = make([]*rateLimit, len(rules))
	for i := range rules {
		r := &rules[i]
		pr.counters[i] = s.guardCounter(r.Name)
		if r.RateOver != nil {
			r.RateOver.Estimator = s.rateEstimator(r.Name, r.RateOver)
		}
		switch r.Action {
		case guard.ActionRateLimit:
			if pr.limits[i], err = s.protectionLimit(p, r.Limit); err != nil {
				return nil, fmt.Errorf("protection.rules[%d]: %w", i, err)
			}
		case guard.ActionChallenge:
			if pr.challenge == nil {
				if pr.challenge, err = s.challenge(&p.Challenge); err != nil {
					return nil, err
				}
				pr.verify = s.guardCounter(ruleVerify)
			}
		}
	}
	if pr.rules, err = guard.NewRules(rules); err != nil {
		return nil, fmt.Errorf("protection: %w", err)
	}
	return pr, nil
}

// rateEstimator returns the sketch of a rule's rate condition, kept across
// reloads while its interval and width stay the same.
func (s *Shared) rateEstimator(rule string, ro *guard.RateOver) *limit.Rate {
	width := ro.Width
	if width == 0 {
		width = 1 << 16
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e, ok := s.estimators[rule]
	if !ok || e.width != width || e.rate.Interval() != ro.Interval {
		e = estimator{rate: limit.NewRate(ro.Interval, width), width: width}
		s.estimators[rule] = e
	}
	return e.rate
}

// estimator is a rule's rate sketch and the width it was made with.
type estimator struct {
	rate  *limit.Rate
	width int
}

// protectionLimit returns the named limit of protection.limits.
func (s *Shared) protectionLimit(p *config.Protection, name string) (*rateLimit, error) {
	rl := p.FindLimit(name)
	if rl == nil {
		return nil, fmt.Errorf("unknown limit %q", name)
	}
	if rl.Key.Kind == config.KeyRoute {
		return nil, fmt.Errorf("limit %q: key route is not available to protection rules, which run before routing", name)
	}
	lim, err := s.limiter("protection:"+name, rl.Limit())
	if err != nil {
		return nil, fmt.Errorf("limit %q: %w", name, err)
	}
	return &rateLimit{cfg: rl, limiter: lim, name: name, geo: s.Geo()}, nil
}

// challenge builds the proof-of-work challenge, with the process's own
// key when the config names none.
func (s *Shared) challenge(cc *config.Challenge) (*guard.Challenge, error) {
	ch, err := cc.GuardChallenge()
	if err != nil {
		return nil, err
	}
	if ch.Secret == nil {
		ch.Secret = s.challengeSecret()
	}
	if err := ch.Provision(); err != nil {
		return nil, fmt.Errorf("protection.challenge: %w", err)
	}
	return ch, nil
}

// protectState is what the protection layer keeps for a request, in the
// connection's state (state.go), so that deciding allocates nothing. Its
// Attrs are not connState.attrs because an expression rate-limit key
// resets those while the rules still read these.
type protectState struct {
	attrs  guard.Attrs
	ticket limit.Ticket // the request's in-flight slot, until Log
	held   bool
}

// early runs the protection layer for a request; answered means it has
// sent the response.
func (p *protection) early(c *proxy.Ctx) (answered bool, err error) {
	if p.inFlight != nil {
		c.Buf = limit.ClientKey(c.Buf[:0], c.Client.Addr())
		t, ok := p.inFlight.Acquire(c.Buf)
		if !ok {
			p.record(c, p.inFlightOver, outLimited)
			return true, respondText(c, 429, "too many requests in flight\n", "Retry-After", "1")
		}
		hold(c, t)
	}
	if p.challenge != nil && string(c.Request.Path) == p.challenge.VerifyPath {
		return true, p.answer(c)
	}
	if p.rules == nil {
		return false, nil
	}
	st := &stateOf(c).protect
	st.attrs.Reset(c.Client.Addr(), c.JA4, c.Request)
	st.attrs.Now = c.Trace.Start // read when the request began: one clock read fewer
	return p.decide(c, st)
}

// decide evaluates the rules and carries out the verdict. A verdict's Next
// is the index after its rule's, which indexes counters and limits.
func (p *protection) decide(c *proxy.Ctx, st *protectState) (bool, error) {
	v := p.rules.Evaluate(&st.attrs)
	for v.Action == guard.ActionRateLimit {
		rl, g := p.limits[v.Next-1], p.counters[v.Next-1]
		c.Buf = rateKey(c.Buf[:0], c, rl.cfg, rl.geo)
		d := rl.limiter.Allow(c.Buf, st.attrs.Now)
		switch {
		case !d.Allowed && rl.cfg.Action != config.LimitLog:
			p.record(c, g, outLimited)
			return true, tooMany(c, rl, d)
		case !d.Allowed:
			p.record(c, g, outLogged)
		default:
			p.record(c, g, outWithin)
		}
		v = p.rules.EvaluateFrom(&st.attrs, v.Next)
	}
	if v.Action == guard.ActionNone {
		p.record(c, p.none, outNone)
		return false, nil
	}
	g := p.counters[v.Next-1]
	switch v.Action {
	case guard.ActionAllow:
		p.record(c, g, outAllow)
		return false, nil
	case guard.ActionChallenge:
		if p.challenge.Passed(c.Request, st.attrs.IP, st.attrs.Now) {
			p.record(c, g, outPassed)
			return false, nil
		}
		p.record(c, g, outChallenge)
		return true, p.page(c, st)
	case guard.ActionTarpit:
		return true, p.tarpit(c, g, v.Delay)
	}
	p.record(c, g, outDeny)
	return true, deny(c)
}

// record counts a decision and traces it; refusals also name the rule
// under "deny" for the access log.
func (p *protection) record(c *proxy.Ctx, g *guardCounter, o guardOutcome) {
	g.n[o].Add(1)
	c.Trace.Add("guard", g.detail[o])
	switch o {
	case outDeny, outTarpit, outChallenge, outLimited:
		c.Trace.Add("deny", g.rule)
	}
}

// tarpit holds the answer for delay, or until the request's context ends,
// then denies; past maxTarpits held at once it denies at once.
func (p *protection) tarpit(c *proxy.Ctx, g *guardCounter, delay time.Duration) error {
	if p.tarpits.Add(1) > maxTarpits {
		p.tarpits.Add(-1)
		p.record(c, g, outDeny)
		return deny(c)
	}
	p.record(c, g, outTarpit)
	t := time.NewTimer(delay)
	select {
	case <-t.C:
	case <-c.Done():
		t.Stop()
	}
	p.tarpits.Add(-1)
	return deny(c)
}

// page answers with the challenge page.
func (p *protection) page(c *proxy.Ctx, st *protectState) error {
	var h httphead.Header
	h.AddString("Content-Type", guard.PageContentType)
	h.AddString("Cache-Control", "no-store")
	if csp := p.challenge.ContentSecurityPolicy(); csp != "" {
		h.AddString("Content-Security-Policy", csp)
	}
	c.Buf = p.challenge.AppendPage(c.Buf[:0], st.attrs.IP, st.attrs.UserAgent(), c.Request.Target, st.attrs.Now)
	return c.Respond(403, &h, c.Buf)
}

// answer is the challenge's verification endpoint: a correct answer gets
// the pass cookie and a redirect to the page first asked for.
func (p *protection) answer(c *proxy.Ctx) error {
	if !c.Request.IsMethod("POST") {
		return respondText(c, 405, "method not allowed\n", "Allow", "POST")
	}
	body, err := io.ReadAll(io.LimitReader(c.Session().Body(), maxAnswer+1))
	if err != nil {
		return fmt.Errorf("reading challenge answer: %w", err)
	}
	ip, ua := c.Client.Addr(), c.Request.Header.Peek("User-Agent")
	cookie, location, err := p.challenge.Answer(body, ip, ua, time.Now(), c.TLS != nil)
	if err != nil || len(body) > maxAnswer {
		p.record(c, p.verify, outDeny)
		return respondText(c, 403, "challenge failed\n")
	}
	p.record(c, p.verify, outPassed)
	var h httphead.Header
	h.Add([]byte("Set-Cookie"), cookie)
	h.AddString("Location", location)
	h.AddString("Cache-Control", "no-store")
	return c.Respond(303, &h, nil)
}

// deny answers 403.
func deny(c *proxy.Ctx) error { return respondText(c, 403, "forbidden\n") }

// respondText answers with a short plain-text body and the given extra
// fields (name, value pairs).
func respondText(c *proxy.Ctx, status int, body string, fields ...string) error {
	var h httphead.Header
	h.AddString("Content-Type", "text/plain; charset=utf-8")
	h.AddString("Cache-Control", "no-store")
	for i := 0; i+1 < len(fields); i += 2 {
		h.AddString(fields[i], fields[i+1])
	}
	c.Buf = append(c.Buf[:0], body...)
	return c.Respond(status, &h, c.Buf)
}

// hold keeps a request's in-flight ticket until Log releases it.
func hold(c *proxy.Ctx, t limit.Ticket) {
	st := &stateOf(c).protect
	st.ticket, st.held = t, true
}

// releaseInFlight gives back the request's in-flight ticket, if it holds
// one; Log calls it once per request.
func releaseInFlight(c *proxy.Ctx) {
	st, ok := stateKey.Get(c)
	if !ok || !st.protect.held {
		return
	}
	st.protect.ticket.Release()
	st.protect.ticket, st.protect.held = limit.Ticket{}, false
}

var (
	fieldJA4  = []byte("X-JA4")
	fieldJA4H = []byte("X-JA4H")
)

// fingerprintFields replaces whatever X-JA4 and X-JA4H the client sent
// with the fingerprints computed here.
func (p *protection) fingerprintFields(c *proxy.Ctx, out *httphead.Request) {
	out.Header.Del("X-JA4")
	out.Header.Del("X-JA4H")
	if c.JA4 != "" {
		c.Buf = append(c.Buf[:0], c.JA4...)
		out.Header.Add(fieldJA4, c.Buf)
	}
	c.Buf = guard.AppendJA4H(c.Buf[:0], c.Request)
	out.Header.Add(fieldJA4H, c.Buf)
}
