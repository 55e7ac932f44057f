// Package metrics exports Outpost's counters in the Prometheus format. The
// engine counts into plain atomics (package stats and the counters of the
// cache, pools and upstreams); at scrape time a Source gathers them into a
// Snapshot and this package turns that into Prometheus metrics. Nothing on
// the request path touches Prometheus types.
package metrics

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/outpost-edge/outpost/stats"
)

// Snapshot is everything there is to export at one scrape.
type Snapshot struct {
	Routes  []*stats.Route
	Servers []Server
	// Values are further counters and gauges (cache, purge, connections).
	Values []Value
}

// Server is one upstream server's figures.
type Server struct {
	Upstream, Addr   string
	Requests, Errors uint64           // attempts, and those that failed or answered 5xx
	Latency          *stats.Histogram // time to the response head
	Healthy          bool             // taking traffic: passes active checks and not ejected
	CheckedDown      bool             // failed active health checks
	Ejected          bool             // ejected by passive outlier detection now
	Ejections        uint64           // times ejected by passive outlier detection
	Inflight         int64            // attempts in progress
	Dials, Reuses    uint64           // connections opened, and requests that reused one
}

// Value is one sample of a counter or gauge.
type Value struct {
	Name, Help string
	Counter    bool
	Labels     []string // name, value, name, value...
	V          float64
}

// Source gathers a Snapshot.
type Source func() Snapshot

// Handler serves the metrics of src, plus the Go runtime and process
// collectors.
func Handler(src Source) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), &collector{src: src})
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
}

type collector struct{ src Source }

// Describe sends nothing: the metric set depends on the config, which makes
// this an unchecked collector.
func (c *collector) Describe(chan<- *prometheus.Desc) {}

var (
	reqDesc     = prometheus.NewDesc("outpost_requests_total", "Requests served, by route and status class.", []string{"route", "code"}, nil)
	latDesc     = prometheus.NewDesc("outpost_request_duration_seconds", "Time from request head to the end of the response, by route.", []string{"route"}, nil)
	bytesDesc   = prometheus.NewDesc("outpost_response_bytes_total", "Response body bytes sent to clients, by route.", []string{"route"}, nil)
	upReqDesc   = prometheus.NewDesc("outpost_upstream_requests_total", "Requests sent to an upstream server.", []string{"upstream", "server"}, nil)
	upErrDesc   = prometheus.NewDesc("outpost_upstream_errors_total", "Upstream attempts that failed or answered 5xx.", []string{"upstream", "server"}, nil)
	upLatDesc   = prometheus.NewDesc("outpost_upstream_duration_seconds", "Time to an upstream's response head.", []string{"upstream", "server"}, nil)
	upDialDesc  = prometheus.NewDesc("outpost_upstream_connections_opened_total", "New connections opened to an upstream server.", []string{"upstream", "server"}, nil)
	upReuseDesc = prometheus.NewDesc("outpost_upstream_connections_reused_total", "Requests sent on a reused upstream connection.", []string{"upstream", "server"}, nil)
	upHealth    = prometheus.NewDesc("outpost_upstream_healthy", "1 when the server is taking traffic.", []string{"upstream", "server"}, nil)
	upCheckDesc = prometheus.NewDesc("outpost_upstream_check_failed", "1 when the server fails its active health checks.", []string{"upstream", "server"}, nil)
	upEjected   = prometheus.NewDesc("outpost_upstream_ejected", "1 while passive outlier detection keeps the server out.", []string{"upstream", "server"}, nil)
	upEjectDesc = prometheus.NewDesc("outpost_upstream_ejections_total", "Times the server was ejected by passive outlier detection.", []string{"upstream", "server"}, nil)
	upInflight  = prometheus.NewDesc("outpost_upstream_inflight", "Attempts in progress on the server.", []string{"upstream", "server"}, nil)
)

var classes = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	s := c.src()
	for _, r := range s.Routes {
		for i := range r.ByClass {
			if n := r.ByClass[i].Load(); n > 0 {
				ch <- prometheus.MustNewConstMetric(reqDesc, prometheus.CounterValue, float64(n), r.Name, classes[i])
			}
		}
		ch <- histogram(latDesc, &r.Latency, r.Name)
		ch <- prometheus.MustNewConstMetric(bytesDesc, prometheus.CounterValue, float64(r.BytesOut.Load()), r.Name)
	}
	for _, sv := range s.Servers {
		l := []string{sv.Upstream, sv.Addr}
		ch <- prometheus.MustNewConstMetric(upReqDesc, prometheus.CounterValue, float64(sv.Requests), l...)
		ch <- prometheus.MustNewConstMetric(upErrDesc, prometheus.CounterValue, float64(sv.Errors), l...)
		ch <- histogram(upLatDesc, sv.Latency, l...)
		ch <- prometheus.MustNewConstMetric(upDialDesc, prometheus.CounterValue, float64(sv.Dials), l...)
		ch <- prometheus.MustNewConstMetric(upReuseDesc, prometheus.CounterValue, float64(sv.Reuses), l...)
		ch <- prometheus.MustNewConstMetric(upHealth, prometheus.GaugeValue, b2f(sv.Healthy), l...)
		ch <- prometheus.MustNewConstMetric(upCheckDesc, prometheus.GaugeValue, b2f(sv.CheckedDown), l...)
		ch <- prometheus.MustNewConstMetric(upEjected, prometheus.GaugeValue, b2f(sv.Ejected), l...)
		ch <- prometheus.MustNewConstMetric(upEjectDesc, prometheus.CounterValue, float64(sv.Ejections), l...)
		ch <- prometheus.MustNewConstMetric(upInflight, prometheus.GaugeValue, float64(sv.Inflight), l...)
	}
	for _, v := range s.Values {
		var names, values []string
		for i := 0; i+1 < len(v.Labels); i += 2 {
			names, values = append(names, v.Labels[i]), append(values, v.Labels[i+1])
		}
		kind := prometheus.GaugeValue
		if v.Counter {
			kind = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(prometheus.NewDesc(v.Name, v.Help, names, nil), kind, v.V, values...)
	}
}

func histogram(d *prometheus.Desc, h *stats.Histogram, labels ...string) prometheus.Metric {
	cum, count, sum := h.Snapshot()
	buckets := make(map[float64]uint64, len(cum))
	for i, ub := range stats.LatencyBuckets {
		buckets[ub] = cum[i]
	}
	return prometheus.MustNewConstHistogram(d, count, sum, buckets, labels...)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
