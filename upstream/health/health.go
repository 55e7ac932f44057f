// Package health runs active health checks against upstream servers: on a
// ticker, each target is probed (an HTTP GET expecting a status range, or a
// TCP connect) with a timeout, and a target flips to down after Fall failed
// probes in a row and back up after Rise good ones. Verdict changes go to an
// Observer; wire it to upstream.Backend.SetHealthy. The package knows no
// selection logic and keeps no server list of its own beyond the targets it
// is given.
package health

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Probe checks one server once. It returns nil when the server is healthy.
// It must honour ctx, which carries the check's timeout.
type Probe interface {
	Probe(ctx context.Context, addr string) error
}

// Observer is told when a target's verdict changes. It is called from the
// checker's goroutine, one call at a time, and must not block for long.
type Observer func(addr string, healthy bool)

// Config sets how often and how strictly targets are checked. The zero value
// checks every 10s with a 2s timeout, down after 3 failures, up after 2
// successes.
type Config struct {
	// Interval is the time between rounds of checks. Default 10s.
	Interval time.Duration
	// Timeout bounds one probe. Default 2s, and never above Interval.
	Timeout time.Duration
	// Rise is the number of good probes in a row that bring a down target
	// back up. Default 2.
	Rise int
	// Fall is the number of failed probes in a row that take an up target
	// down. Default 3.
	Fall int
}

func (c Config) withDefaults() Config {
	c.Interval = cmp.Or(c.Interval, 10*time.Second)
	c.Timeout = min(cmp.Or(c.Timeout, 2*time.Second), c.Interval)
	c.Rise = cmp.Or(c.Rise, 2)
	c.Fall = cmp.Or(c.Fall, 3)
	return c
}

// Checker probes a set of targets. Targets start healthy, as upstream
// servers do, so a new server takes traffic until Fall probes fail.
type Checker struct {
	cfg     Config
	probe   Probe
	observe Observer
	log     *slog.Logger

	// round serialises rounds, so verdicts are applied in probe order and
	// the observer is never called concurrently.
	round sync.Mutex
	// mu guards targets; SetTargets may run during a round.
	mu      sync.Mutex
	targets map[string]*target
}

// target is one server's check state, owned by the round in progress.
type target struct {
	healthy bool
	streak  int // probes in a row disagreeing with the current verdict
}

// New returns a Checker with no targets. A nil log means slog.Default().
func New(cfg Config, p Probe, observe Observer, log *slog.Logger) (*Checker, error) {
	if cfg.Interval < 0 || cfg.Timeout < 0 || cfg.Rise < 0 || cfg.Fall < 0 {
		return nil, fmt.Errorf("health: negative setting in %+v", cfg)
	}
	if p == nil || observe == nil {
		return nil, fmt.Errorf("health: a probe and an observer are required")
	}
	return &Checker{
		cfg:     cfg.withDefaults(),
		probe:   p,
		observe: observe,
		log:     cmp.Or(log, slog.Default()),
		targets: map[string]*target{},
	}, nil
}

// SetTargets replaces the addresses to check. Targets that remain keep
// their state; new ones start healthy.
func (c *Checker) SetTargets(addrs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	next := make(map[string]*target, len(addrs))
	for _, a := range addrs {
		next[a] = cmp.Or(c.targets[a], &target{healthy: true})
	}
	c.targets = next
}

// Healthy returns the current verdict for addr; known is false for an
// address that is not a target.
func (c *Checker) Healthy(addr string) (healthy, known bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.targets[addr]
	if t == nil {
		return false, false
	}
	return t.healthy, true
}

// Run checks every target at once and then about every Interval until ctx
// is done. Each pause is jittered by up to ±10% so that the checkers of
// many backends, started together, drift apart instead of probing in
// bursts. Run is meant to run in its own goroutine, owned by whoever owns
// ctx. A panic in a round (a probe's or the observer's) is logged and the
// next round runs as usual.
func (c *Checker) Run(ctx context.Context) {
	for {
		c.safeCheck(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(jitter(c.cfg.Interval)):
		}
	}
}

// jitter returns d give or take up to 10%.
func jitter(d time.Duration) time.Duration {
	spread := int64(d) / 5
	if spread <= 0 {
		return d
	}
	return d - time.Duration(spread/2) + time.Duration(rand.Int64N(spread+1))
}

func (c *Checker) safeCheck(ctx context.Context) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("health check round panicked", "panic", p)
		}
	}()
	c.Check(ctx)
}

// Check runs one round: every target is probed concurrently, and verdicts
// that change are reported to the observer. It returns when the round is
// over, at most Timeout later (plus the observer's time).
func (c *Checker) Check(ctx context.Context) {
	c.round.Lock()
	defer c.round.Unlock()
	c.mu.Lock()
	addrs := make([]string, 0, len(c.targets))
	for a := range c.targets {
		addrs = append(addrs, a)
	}
	c.mu.Unlock()

	results := make([]error, len(addrs))
	var wg sync.WaitGroup
	for i, a := range addrs {
		wg.Go(func() { results[i] = c.probeOnce(ctx, a) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // probes cut short by shutdown say nothing about the servers
	}
	for i, a := range addrs {
		c.apply(a, results[i])
	}
}

// probeOnce runs the probe under the timeout. A panicking probe counts as
// a failure: a broken check must not take the process down.
func (c *Checker) probeOnce(ctx context.Context, addr string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			c.log.Error("health probe panicked", "server", addr, "panic", p)
			err = fmt.Errorf("health probe panicked: %v", p)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	return c.probe.Probe(ctx, addr)
}

// apply folds one probe result into addr's state and tells the observer
// when the verdict flips.
func (c *Checker) apply(addr string, err error) {
	c.mu.Lock()
	t := c.targets[addr]
	if t == nil { // removed during the round
		c.mu.Unlock()
		return
	}
	flipped := false
	if (err == nil) == t.healthy {
		t.streak = 0
	} else {
		t.streak++
		need := c.cfg.Fall
		if !t.healthy {
			need = c.cfg.Rise
		}
		if t.streak >= need {
			t.healthy, t.streak, flipped = !t.healthy, 0, true
		}
	}
	healthy := t.healthy
	c.mu.Unlock()

	if err != nil {
		c.log.Debug("health check failed", "server", addr, "err", err)
	}
	if flipped {
		c.log.Debug("health verdict changed", "server", addr, "healthy", healthy, "err", err)
		c.observe(addr, healthy)
	}
}
