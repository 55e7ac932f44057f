package wasm

import (
	"time"

	"github.com/tetratelabs/wazero/api"
)

// minTickPeriod bounds how often a filter's root context ticks: a shorter
// period asked for is raised to it.
const minTickPeriod = 10 * time.Millisecond

// hostSetTickPeriod is proxy_set_tick_period_milliseconds: the filter's
// root context gets proxy_on_tick every period (0 stops the ticks). The
// period is the filter's, whichever instance set it last; each tick runs
// on one idle instance (a tick finding none idle is skipped), as Envoy
// ticks each VM's root context.
func hostSetTickPeriod(s *stream, m api.Memory, p []uint64) uint32 {
	if s.f == nil {
		return statusBadArgument
	}
	period := time.Duration(p[0]) * time.Millisecond
	if period > 0 {
		period = max(period, minTickPeriod)
	}
	s.f.tickPeriod.Store(int64(period))
	if period > 0 {
		s.f.tickOnce.Do(func() { go s.f.ticks() })
	}
	return statusOK
}

// ticks calls proxy_on_tick on an idle instance every tick period until
// the filter is closed.
func (f *Filter) ticks() {
	t := time.NewTimer(time.Duration(f.tickPeriod.Load()))
	defer t.Stop()
	for {
		select {
		case <-f.done:
			return
		case <-t.C:
		}
		period := time.Duration(f.tickPeriod.Load())
		if period == 0 {
			period = time.Second // stopped: look again later
		} else {
			f.tick()
		}
		t.Reset(period)
	}
}

// tick runs one proxy_on_tick on an idle instance, if any.
func (f *Filter) tick() {
	var i *instance
	select {
	case i = <-f.pool:
	default:
		return
	}
	if _, err := i.call(onTick, rootID); err != nil {
		f.log.Warn("wasm filter failed in proxy_on_tick", "error", err)
	}
	f.put(i)
}
