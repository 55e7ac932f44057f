package edge

import (
	"context"
	"fmt"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/origin/chain"
	"github.com/outpost-edge/outpost/origin/s3"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/transform"
)

// newBucket builds a type s3 upstream. Its credentials are read now, so a
// missing file or key refuses the config rather than failing requests.
func newBucket(name string, u *config.Upstream, counters *s3.Counters) (*s3.Origin, error) {
	sc := u.S3
	creds, err := s3.Credentials(context.Background(), sc.Credentials.Source, sc.Credentials.File, sc.Credentials.Profile)
	if err != nil {
		return nil, fmt.Errorf("upstream %s: %w", name, err)
	}
	return s3.New(s3.Config{
		Name: name, Bucket: sc.Bucket, Region: sc.Region, Endpoint: sc.EndpointURL(), PathStyle: sc.PathStyle,
		URLPrefix: sc.URLPrefix, KeyPrefix: sc.KeyPrefix, Index: sc.Index, Credentials: creds,
		ConnectTimeout: u.ConnectTimeout, FirstByteTimeout: u.FirstByteTimeout, Counters: counters,
	})
}

// origin returns the proxy.Upstream a route sends to: its upstream, or
// the chain of it and its fallbacks, with the route's body transforms
// around it.
func (a *App) origin(rc *config.Route) proxy.Upstream {
	up := a.chain(rc)
	var rules transform.Rules
	if rc.Compress.Enabled {
		rules.Compress = &transform.Compress{Types: rc.Compress.Types, MinSize: int64(rc.Compress.MinSize)}
	}
	if rw := rc.Rewrite; rw != nil {
		rules.Rewrite = &transform.Rewrite{Types: rw.Types}
		for _, p := range rw.Replace {
			rules.Rewrite.Replace = append(rules.Rewrite.Replace, transform.Replacement{Find: []byte(p.Find), With: []byte(p.With)})
		}
	}
	if rules == (transform.Rules{}) {
		return up
	}
	return transform.Wrap(up, rules)
}

// chain returns the route's upstream, or the chain of it and its
// fallbacks.
func (a *App) chain(rc *config.Route) proxy.Upstream {
	if len(rc.Fallback) == 0 {
		return a.byName(rc.Upstream)
	}
	hops := []chain.Hop{{Name: rc.Upstream, Upstream: a.byName(rc.Upstream)}}
	for _, name := range rc.Fallback {
		hops = append(hops, chain.Hop{Name: name, Upstream: a.byName(name)})
	}
	return chain.New(hops, rc.FallbackOn)
}

// byName returns a config upstream (validation has checked it exists).
func (a *App) byName(name string) proxy.Upstream {
	if b, ok := a.buckets[name]; ok {
		return b
	}
	return a.upstreams[name]
}

// markOrigin takes the chain's record of the hop that answered off a
// response to a fallback route: into the trace (a fill's own trace holds
// the walk) and Cache-Status's detail.
func markOrigin(c *proxy.Ctx, r *route, h *httphead.Header) {
	if len(r.cfg.Fallback) == 0 {
		return
	}
	if hop := h.Peek(chain.HopField); hop != nil {
		c.Trace.Add("origin", string(hop))
		chain.MarkCacheStatus(h, string(hop))
		h.Del(chain.HopField)
	}
}

// bucketAddr is the store's host of the type s3 upstream name, for
// metrics; "" when this config has no such bucket.
func (a *App) bucketAddr(name string) string {
	if o := a.buckets[name]; o != nil {
		return o.Addr()
	}
	return ""
}
