package edge

import "github.com/outpost-edge/outpost/upstream/health"

// startHealth runs the upstream's active health checks, when configured,
// against its current servers; verdicts flip the servers' health.
func (b *backend) startHealth(s *Shared) {
	hc := &b.settings().cfg.Health
	if !hc.Enabled() {
		return
	}
	var probe health.Probe = health.TCP{}
	if hc.Path != "" {
		probe = &health.HTTP{Path: hc.Path, MinStatus: hc.ExpectStatus.Low, MaxStatus: hc.ExpectStatus.High, TLS: b.tls}
	}
	c, err := health.New(health.Config{Interval: hc.Interval, Timeout: hc.Timeout, Rise: hc.Rise, Fall: hc.Fall}, probe,
		func(addr string, healthy bool) { b.b.SetHealthy(addr, healthy) }, // which logs the change
		s.Log)
	if err != nil {
		s.Log.Error("health checks not started", "upstream", b.name, "error", err)
		return
	}
	b.health = c
	b.syncHealthTargets()
	go c.Run(b.ctx)
}

// syncHealthTargets makes the checker follow the backend's servers.
func (b *backend) syncHealthTargets() {
	if b.health == nil {
		return
	}
	var addrs []string
	for _, s := range b.b.Servers() {
		addrs = append(addrs, s.Addr)
	}
	b.health.SetTargets(addrs)
}
