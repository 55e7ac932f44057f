package node

import (
	"strings"
	"time"

	"github.com/outpost-edge/outpost/metrics"
	"github.com/outpost-edge/outpost/stats"
)

// Status is the node's live figures for the status page (GET
// /status.json): counters since start, which the page turns into rates
// between two polls, and gauges.
type Status struct {
	Time        int64              `json:"time_ms"` // Unix milliseconds
	Uptime      float64            `json:"uptime_s"`
	Connections int64              `json:"connections"`
	ByClass     map[string]uint64  `json:"requests_by_class"` // "1xx"... "5xx", "other"
	BytesOut    uint64             `json:"bytes_out"`
	Cache       map[string]float64 `json:"cache"` // outpost_cache_* without the prefix
	Tiers       []Tier             `json:"tiers"`
	Origin      OriginFigures      `json:"origin"`
	Latency     Latencies          `json:"latency"`
	Servers     []ServerStatus     `json:"servers"`
	Protection  []RuleCount        `json:"protection"`
}

// Tier is one storage tier's fill.
type Tier struct {
	Tier     string  `json:"tier"`
	Objects  float64 `json:"objects"`
	Bytes    float64 `json:"bytes"`
	Capacity float64 `json:"capacity"`
}

// OriginFigures count what was asked of the origins.
type OriginFigures struct {
	Requests uint64  `json:"requests"` // attempts to every upstream server
	Bytes    float64 `json:"bytes"`    // body bytes read by the cache
}

// Latencies are cumulative histogram counts over LatencyBuckets (seconds;
// one more count for the rest).
type Latencies struct {
	Buckets []float64 `json:"buckets"`
	Hit     []uint64  `json:"hit"`
	Miss    []uint64  `json:"miss"`
}

// ServerStatus is an upstream server's health.
type ServerStatus struct {
	Upstream    string `json:"upstream"`
	Addr        string `json:"addr"`
	Healthy     bool   `json:"healthy"`
	CheckedDown bool   `json:"checked_down"`
	Ejected     bool   `json:"ejected"`
	Ejections   uint64 `json:"ejections"`
	Requests    uint64 `json:"requests"`
	Errors      uint64 `json:"errors"`
	Inflight    int64  `json:"inflight"`
}

// RuleCount is how often a protection rule decided something.
type RuleCount struct {
	Rule   string  `json:"rule"`
	Action string  `json:"action"`
	Count  float64 `json:"count"`
}

// Status gathers the status page's figures from the metrics snapshot.
func (n *Node) Status() Status {
	snap := n.metricsSnapshot()
	st := Status{Time: time.Now().UnixMilli(), Uptime: time.Since(n.started).Seconds(), Connections: n.srv.Conns(),
		ByClass: map[string]uint64{}, Cache: map[string]float64{}, Tiers: []Tier{}, Servers: []ServerStatus{},
		Protection: []RuleCount{}, Latency: Latencies{Buckets: stats.LatencyBuckets}}
	hit, miss := make([]uint64, len(stats.LatencyBuckets)+1), make([]uint64, len(stats.LatencyBuckets)+1)
	classes := [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}
	for _, r := range snap.Routes {
		for i, name := range classes {
			st.ByClass[name] += r.ByClass[i].Load()
		}
		st.BytesOut += r.BytesOut.Load()
		addHistogram(hit, &r.HitLatency)
		addHistogram(miss, &r.MissLatency)
	}
	st.Latency.Hit, st.Latency.Miss = hit, miss
	for _, s := range snap.Servers {
		st.Servers = append(st.Servers, ServerStatus{Upstream: s.Upstream, Addr: s.Addr, Healthy: s.Healthy,
			CheckedDown: s.CheckedDown, Ejected: s.Ejected, Ejections: s.Ejections, Requests: s.Requests,
			Errors: s.Errors, Inflight: s.Inflight})
		st.Origin.Requests += s.Requests
	}
	tiers := map[string]*Tier{}
	var order []*Tier // tiers in the snapshot's order
	for _, v := range snap.Values {
		switch v.Name {
		case "outpost_guard_decisions_total":
			st.Protection = append(st.Protection, RuleCount{Rule: label(v, "rule"), Action: label(v, "action"), Count: v.V})
		case "outpost_storage_objects", "outpost_storage_bytes", "outpost_storage_capacity_bytes":
			name := label(v, "tier")
			t := tiers[name]
			if t == nil {
				t = &Tier{Tier: name}
				tiers[name] = t
				order = append(order, t)
			}
			switch v.Name {
			case "outpost_storage_objects":
				t.Objects = v.V
			case "outpost_storage_bytes":
				t.Bytes = v.V
			default:
				t.Capacity = v.V
			}
		default:
			if name, ok := strings.CutPrefix(v.Name, "outpost_cache_"); ok && len(v.Labels) == 0 {
				st.Cache[name] = v.V
			}
		}
	}
	for _, t := range order {
		st.Tiers = append(st.Tiers, *t)
	}
	st.Origin.Bytes = st.Cache["bytes_from_origin_total"]
	return st
}

func addHistogram(dst []uint64, h *stats.Histogram) {
	cum, count, _ := h.Snapshot()
	for i, c := range cum {
		dst[i] += c
	}
	dst[len(cum)] += count
}

func label(v metrics.Value, name string) string {
	for i := 0; i+1 < len(v.Labels); i += 2 {
		if v.Labels[i] == name {
			return v.Labels[i+1]
		}
	}
	return ""
}
