package edge

import (
	"fmt"
	"time"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/config/expr"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/limit"
	"github.com/outpost-edge/outpost/proxy"
)

// rateLimit is one of a route's rate limits.
type rateLimit struct {
	geo     expr.Geo
	cfg     *config.RateLimit
	limiter *limit.Limiter
	name    string // "route/index", the RateLimit policy name
}

// limiterSlots is the room each limiter has for active keys; see
// limit.New (8 bytes a slot).
const limiterSlots = 1 << 18

// limiter returns the limiter for a route's limit, kept across reloads
// while the limit stays the same, so that a reload does not hand every
// client a fresh burst.
func (s *Shared) limiter(name string, l limit.Limit) (*limit.Limiter, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if lim, ok := s.limiters[name]; ok && lim.Limit() == l.WithDefaults() {
		return lim, nil
	}
	lim, err := limit.New(l, limiterSlots)
	if err != nil {
		return nil, err
	}
	s.limiters[name] = lim
	return lim, nil
}

func (s *Shared) routeLimits(rc *config.Route) ([]rateLimit, error) {
	var out []rateLimit
	for i := range rc.RateLimits {
		rl := &rc.RateLimits[i]
		name := fmt.Sprintf("%s/%d", rc.Name, i)
		lim, err := s.limiter(name, limit.Limit{Name: name, Rate: rl.Rate, Period: rl.Per, Burst: rl.Burst})
		if err != nil {
			return nil, fmt.Errorf("route %s: rate_limits[%d]: %w", rc.Name, i, err)
		}
		out = append(out, rateLimit{cfg: rl, limiter: lim, name: name, geo: s.Geo()})
	}
	return out, nil
}

// RequestFilter implements proxy.RequestFilter: the route's rate limits,
// then its Proxy-Wasm filters (before the cache lookup).
func (a *App) RequestFilter(c *proxy.Ctx) (bool, error) {
	r := routeOf(c)
	if r == nil {
		return false, nil
	}
	now := time.Now()
	for i := range r.limits {
		rl := &r.limits[i]
		c.Buf = rateKey(c.Buf[:0], c, rl.cfg, rl.geo)
		d := rl.limiter.Allow(c.Buf, now)
		if d.Allowed {
			continue
		}
		if rl.cfg.Action == config.LimitLog {
			c.Trace.Add("limit", rl.name+" over (log only)")
			continue
		}
		c.Trace.Add("limit", rl.name)
		return true, tooMany(c, rl, d)
	}
	if r.wasm != nil {
		return r.wasm.Request(c)
	}
	return false, nil
}

// tooMany answers 429 with Retry-After and the IETF RateLimit fields.
func tooMany(c *proxy.Ctx, rl *rateLimit, d limit.Decision) error {
	var h httphead.Header
	c.Buf = limit.AppendRetryAfter(c.Buf[:0], d)
	h.Add([]byte("Retry-After"), c.Buf)
	c.Buf = rl.limiter.AppendPolicy(c.Buf[:0])
	h.Add([]byte("RateLimit-Policy"), c.Buf)
	c.Buf = limit.AppendRateLimit(c.Buf[:0], rl.name, d)
	h.Add([]byte("RateLimit"), c.Buf)
	h.AddString("Content-Type", "text/plain; charset=utf-8")
	h.AddString("Cache-Control", "no-store")
	return c.Respond(429, &h, []byte("too many requests\n"))
}

// rateKey appends the bytes a limit counts a request by.
func rateKey(dst []byte, c *proxy.Ctx, rl *config.RateLimit, geo expr.Geo) []byte {
	k := rl.Key
	switch k.Kind {
	case config.KeyIPv6Net:
		return limit.ClientKey(dst, c.Client.Addr())
	case config.KeyHeader:
		return append(dst, c.Request.Header.Peek(k.Name)...)
	case config.KeyCookie:
		return append(dst, httphead.CookieValue(c.Request.Header.Peek("Cookie"), k.Name)...)
	case config.KeyRoute:
		return append(dst, c.Route.Name...)
	case config.KeyURL:
		return c.Request.AppendPathQuery(dst)
	case config.KeyExpr:
		if rl.KeyProgram != nil {
			if b, err := rl.KeyProgram.AppendString(dst, exprVars(c, geo)); err == nil {
				return b
			}
		}
	}
	return limit.IPKey(dst, c.Client.Addr())
}
