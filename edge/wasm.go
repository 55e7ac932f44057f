package edge

import (
	"fmt"
	"io"
	"os"

	"github.com/outpost-edge/outpost/config"
	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/proxy"
	"github.com/outpost-edge/outpost/wasm"
)

// loadFilters compiles every filter the config declares, once, and returns
// them by name. On an error the ones loaded are closed.
func (a *App) loadFilters(cfg *config.Config) (map[string]*wasm.Filter, error) {
	out := map[string]*wasm.Filter{}
	for name, fc := range cfg.Wasm.Filters {
		code, err := os.ReadFile(fc.File)
		var f *wasm.Filter
		if err == nil {
			f, err = wasm.Load(code, wasm.Spec{
				Name:        name,
				Config:      fc.Config,
				MemoryPages: uint32(fc.MemoryPages),
				CallTimeout: fc.CallTimeout,
				Instances:   fc.Instances,
				FailOpen:    fc.FailOpen,
				BodyLimit:   int64(fc.BodyLimit),
				Upstream:    a.calloutUpstream,
			}, a.shared.Log)
		}
		if err != nil {
			closeFilters(out)
			return nil, fmt.Errorf("wasm.filters.%s: %w", name, err)
		}
		out[name] = f
	}
	return out, nil
}

// calloutUpstream returns the upstream a filter's HTTP call names: the
// config's (HTTP) upstreams only, with their pooling and timeouts. It is
// called while requests run, after Build filled the map.
func (a *App) calloutUpstream(name string) proxy.Upstream {
	if b := a.upstreams[name]; b != nil {
		return b
	}
	return nil
}

// filterChain returns the filters a route runs: wasm.global's, then its
// own; nil when there are none, so that a route without filters does no
// filter work at all.
func filterChain(cfg *config.Config, rc *config.Route, filters map[string]*wasm.Filter) wasm.Chain {
	var ch wasm.Chain
	for _, name := range cfg.Wasm.Global {
		ch = append(ch, filters[name])
	}
	for _, name := range rc.Filters {
		ch = append(ch, filters[name])
	}
	return ch
}

func closeFilters(filters map[string]*wasm.Filter) {
	for _, f := range filters {
		f.Close()
	}
}

// ResponseBody implements proxy.ResponseBodyFilter: the route's Proxy-Wasm
// filters that read bodies (body_limit).
func (a *App) ResponseBody(c *proxy.Ctx, resp *httphead.Response, bodyBytes []byte, body io.Reader) ([]byte, io.Reader, error) {
	if r := routeOf(c); r != nil && r.wasm != nil {
		return r.wasm.ResponseBody(c, resp, bodyBytes, body)
	}
	return bodyBytes, body, nil
}

// RequestTrailers implements proxy.RequestTrailersFilter: the route's
// Proxy-Wasm filters' proxy_on_request_trailers.
func (a *App) RequestTrailers(c *proxy.Ctx, trailers *httphead.Header) error {
	if r := routeOf(c); r != nil && r.wasm != nil {
		return r.wasm.RequestTrailers(c, trailers)
	}
	return nil
}

// ResponseTrailers implements proxy.ResponseTrailersFilter: the route's
// Proxy-Wasm filters' proxy_on_response_trailers.
func (a *App) ResponseTrailers(c *proxy.Ctx, trailers *httphead.Header) error {
	if r := routeOf(c); r != nil && r.wasm != nil {
		return r.wasm.ResponseTrailers(c, trailers)
	}
	return nil
}

// wasmMetrics exports the filters' failures and the metrics they define.
func (a *App) wasmMetrics() []metrics.Value {
	var out []metrics.Value
	for name, f := range a.filters {
		out = append(out, metrics.Value{Name: "outpost_wasm_failures_total", Help: "Requests a Proxy-Wasm filter failed (or was skipped for, when fail_open).",
			Counter: true, Labels: []string{"filter", name}, V: float64(f.Failures())})
		for _, m := range f.Metrics() {
			l := []string{"filter", name, "name", m.Name}
			switch m.Type {
			case "histogram":
				out = append(out,
					metrics.Value{Name: "outpost_wasm_histogram_sum", Help: "Sum of what a filter's histogram recorded.", Counter: true, Labels: l, V: m.Value},
					metrics.Value{Name: "outpost_wasm_histogram_count", Help: "Samples a filter's histogram recorded.", Counter: true, Labels: l, V: float64(m.Count)})
			case "counter":
				out = append(out, metrics.Value{Name: "outpost_wasm_counter", Help: "A counter a Proxy-Wasm filter defined.", Counter: true, Labels: l, V: m.Value})
			default:
				out = append(out, metrics.Value{Name: "outpost_wasm_gauge", Help: "A gauge a Proxy-Wasm filter defined.", Labels: l, V: m.Value})
			}
		}
	}
	return out
}
