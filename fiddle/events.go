package fiddle

import (
	"fmt"
	"net/textproto"
	"sort"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/trace"
)

// events turns a request's trace into {phase, decision, reason} events.
// The trace is the only source: the fiddle decides nothing itself, it
// only names what the engine recorded and adds the why that the config
// holds (what a route matches, which headers a route edits).
// The request's trace and those of the work detached from it (a fill
// that outlives the request, a background refresh) are merged in time
// order; events of detached work say so in Detached.
func (r *runner) events(main *trace.Trace, detached []*trace.Trace) []Event {
	ev := timed(main, false)
	for _, t := range detached {
		ev = append(ev, timed(t, true)...)
	}
	sort.SliceStable(ev, func(i, j int) bool { return ev[i].at.Before(ev[j].at) })
	out := make([]Event, 0, len(ev))
	for i := 0; i < len(ev); i++ {
		e := ev[i].Event
		x := Event{Phase: e.Stage, AtMS: ms(ev[i].at.Sub(main.Start)), Detached: ev[i].detached}
		x.Decision, x.Reason, _ = strings.Cut(e.Detail, ": ")
		switch e.Stage {
		case "route":
			x.Decision, x.Reason = e.Detail, r.routeWhy(e.Detail)
		case "guard":
			rule, outcome := cutLast(e.Detail)
			x.Phase, x.Decision, x.Reason = "protection", outcome, "rule "+rule
		case "deny":
			x.Phase, x.Decision, x.Reason = "protection", "refused", "by rule "+e.Detail
		case "limit":
			x.Phase, x.Decision, x.Reason = "protection", "rate_limited", "rate limit "+e.Detail
		case "cache-key":
			x.Phase, x.Decision, x.Reason = "cache", "key", e.Detail
		case "cache":
			if i+1 < len(ev) && ev[i+1].Stage == "cache-reason" {
				x.Reason = joinReason(x.Reason, ev[i+1].Detail)
				i++
			}
			x.Reason = joinReason(cacheWhy[x.Decision], x.Reason)
		case "cache-ttl":
			x.Phase, x.Decision, x.Reason = "cache", "ttl", e.Detail
		case "cache-store":
			x.Phase = "cache"
		case "upstream":
			x.Decision, x.Reason = "server", r.serverName(e.Detail)
			if e.Detail == "body aborted" {
				x.Decision, x.Reason = "body aborted", "the origin's body ended early"
			}
		case "attempt":
			x.Phase, x.Decision, x.Reason = "upstream", "attempt", "attempt "+e.Detail
		case "failover":
			x.Phase, x.Decision, x.Reason = "upstream", "failover", "to upstream "+e.Detail
		case "retry":
			x.Phase, x.Decision, x.Reason = "retry", "attempt failed", e.Detail
		case "retry-why":
			x.Phase, x.Decision, x.Reason = "retry", "retry", e.Detail
		case "no-retry":
			x.Phase, x.Decision, x.Reason = "retry", "no retry", e.Detail
		}
		out = append(out, x)
		if e.Stage == "route" {
			out = append(out, r.filterEvents(e.Detail, x.AtMS)...)
		}
	}
	return out
}

// cacheWhy explains the cache's lookup outcomes.
var cacheWhy = map[string]string{
	"hit":            "a fresh object was stored",
	"miss":           "nothing usable was stored: fetched from the origin",
	"stale":          "served stale (stale-while-revalidate, stale-if-error or max-stale)",
	"stale-updating": "served stale while one request refreshes it",
	"revalidated":    "the stored object was stale; the origin confirmed it (304)",
	"expired":        "the stored object was stale and the origin sent a new one",
	"collapsed":      "waited on another request's fetch of the same key",
	"pass":           "sent to the origin without caching",
	"bypass":         "the cache does not apply to this request",
}

func joinReason(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "; " + b
}

func cutLast(s string) (string, string) {
	i := strings.LastIndexByte(s, ' ')
	if i < 0 {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// serverName names a mock by the server it stands for.
func (r *runner) serverName(addr string) string {
	if name, ok := r.servers[addr]; ok {
		return name
	}
	return addr
}

// routeWhy says what a route matches: the first route that does wins.
func (r *runner) routeWhy(name string) string {
	for i := range r.cfg.Routes {
		rc := &r.cfg.Routes[i]
		if rc.Name == name {
			return fmt.Sprintf("routes[%d] is the first route matching (%s)", i, describeMatch(&rc.Match))
		}
	}
	return "chosen by a custom router"
}

func describeMatch(m *config.Match) string {
	var parts []string
	add := func(key string, v any) { parts = append(parts, fmt.Sprintf("%s %v", key, v)) }
	if len(m.Hosts) > 0 {
		add("hosts", m.Hosts)
	}
	for _, p := range []struct{ key, v string }{{"path_prefix", m.PathPrefix}, {"path_exact", m.PathExact},
		{"path_pattern", m.PathPattern}, {"path_regex", m.PathRegex}, {"expr", m.Expr}} {
		if p.v != "" {
			add(p.key, p.v)
		}
	}
	if len(m.Methods) > 0 {
		add("methods", m.Methods)
	}
	if len(m.Headers) > 0 {
		add("headers", m.Headers)
	}
	if len(parts) == 0 {
		return "matches every request"
	}
	return strings.Join(parts, ", ")
}

// filterEvents lists the header edits a route's filters make.
func (r *runner) filterEvents(route string, at float64) []Event {
	var out []Event
	for i := range r.cfg.Routes {
		h := &r.cfg.Routes[i].Headers
		if r.cfg.Routes[i].Name != route {
			continue
		}
		add := func(decision string, set map[string]string, remove []string) {
			var parts []string
			for _, k := range remove {
				parts = append(parts, "remove "+k)
			}
			for k, v := range set {
				parts = append(parts, "set "+k+": "+v)
			}
			if len(parts) > 0 {
				out = append(out, Event{Phase: "filter", Decision: decision, Reason: strings.Join(parts, "; "), AtMS: at})
			}
		}
		add("request headers", h.RequestSet, h.RequestRemove)
		add("response headers", h.ResponseSet, h.ResponseRemove)
	}
	return out
}

// noteSurrogateKeys adds the surrogate keys of the stored response to
// the "stored" event: purges by key find the object under them.
func (r *runner) noteSurrogateKeys(res *Result) {
	name := r.cfg.Purge.SurrogateKeyHeader
	if name == "" {
		return
	}
	for i := range res.Events {
		e := &res.Events[i]
		if e.Phase != "cache" || e.Decision != "stored" {
			continue
		}
		for j := len(res.OriginFetches) - 1; j >= 0; j-- {
			for k, v := range res.OriginFetches[j].Response.Headers {
				if strings.EqualFold(k, name) && v != "" {
					e.Reason = joinReason(e.Reason, "surrogate keys: "+v)
					return
				}
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// timedEvent is a trace event with its wall time, to merge traces.
type timedEvent struct {
	trace.Event
	at       time.Time
	detached bool
}

func timed(t *trace.Trace, detached bool) []timedEvent {
	out := make([]timedEvent, len(t.Events))
	for i, e := range t.Events {
		out[i] = timedEvent{Event: e, at: t.Start.Add(e.At), detached: detached}
	}
	return out
}

// headerEvents say what the way through the proxy changed in the
// headers, as observed: the request as the client sent it against the
// request the origin received (the route's edits, X-Forwarded-*, Via,
// fields stripped), and the origin's response against the client's.
func headerEvents(res *Result) []Event {
	var out []Event
	if len(res.OriginFetches) == 0 {
		return nil
	}
	first, last := res.OriginFetches[0], res.OriginFetches[len(res.OriginFetches)-1]
	if d := headerDiff(res.Request.Headers, first.Request.Headers); d != "" {
		out = append(out, Event{Phase: "filter", Decision: "upstream request", Reason: d})
	}
	if last.Response.Fail == "" && res.Response.Status != 0 {
		if d := headerDiff(last.Response.Headers, res.Response.Headers); d != "" {
			out = append(out, Event{Phase: "filter", Decision: "response", Reason: d})
		}
	}
	return out
}

// headerDiff lists the fields added, removed and changed from a to b,
// leaving out the framing and the date, which every hop rewrites.
func headerDiff(a, b map[string]string) string {
	canon := func(h map[string]string) map[string]string {
		m := make(map[string]string, len(h))
		for k, v := range h {
			switch k = textproto.CanonicalMIMEHeaderKey(k); k {
			case "Content-Length", "Date", "Transfer-Encoding", "Connection":
			default:
				m[k] = v
			}
		}
		return m
	}
	ca, cb := canon(a), canon(b)
	var added, removed, changed []string
	for k, v := range cb {
		if old, ok := ca[k]; !ok {
			added = append(added, k+": "+v)
		} else if old != v {
			changed = append(changed, k+": "+old+" → "+v)
		}
	}
	for k := range ca {
		if _, ok := cb[k]; !ok {
			removed = append(removed, k)
		}
	}
	var parts []string
	for _, p := range []struct {
		what string
		list []string
	}{{"added", added}, {"removed", removed}, {"changed", changed}} {
		if len(p.list) > 0 {
			sort.Strings(p.list)
			parts = append(parts, p.what+" "+strings.Join(p.list, "; "))
		}
	}
	return strings.Join(parts, ". ")
}
