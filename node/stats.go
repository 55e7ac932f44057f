package node

import (
	"time"

	"github.com/outpost-edge/outpost/metrics"
)

// Stats is the node's state as GET /stats shows it.
type Stats struct {
	Version     string         `json:"version"`
	Uptime      float64        `json:"uptime_seconds"`
	Fingerprint string         `json:"config_fingerprint"`
	Connections int64          `json:"connections"`
	Rejected    int64          `json:"rejected_requests"`
	Edge        map[string]any `json:"edge"`
}

// Stats gathers the node's figures.
func (n *Node) Stats() Stats {
	cfg := n.Config()
	return Stats{
		Version:     Version,
		Uptime:      time.Since(n.started).Seconds(),
		Fingerprint: cfg.Fingerprint()[:12],
		Connections: n.srv.Conns(),
		Rejected:    n.srv.Rejected.Load(),
		Edge:        n.shared.Stats(),
	}
}

func (n *Node) metricsSnapshot() metrics.Snapshot {
	n.mu.Lock()
	app := n.app
	n.mu.Unlock()
	s := n.shared.Metrics(app)
	s.Values = append(s.Values,
		metrics.Value{Name: "outpost_connections", Help: "Open client connections.", V: float64(n.srv.Conns())},
		metrics.Value{Name: "outpost_rejected_requests_total", Help: "Requests refused as malformed.", Counter: true, V: float64(n.srv.Rejected.Load())},
		metrics.Value{Name: "outpost_refused_connections_total", Help: "Connections closed at once: over the total or per-client limit.", Counter: true, V: float64(n.srv.RefusedConns.Load())},
		metrics.Value{Name: "outpost_slow_clients_total", Help: "Clients cut for reading or sending too slowly.", Counter: true, V: float64(n.srv.SlowClients.Load())},
		metrics.Value{Name: "outpost_h2_protocol_errors_total", Help: "HTTP/2 connections or streams ended for a protocol error.", Counter: true, V: float64(n.h2.ProtocolErrors.Load())},
		metrics.Value{Name: "outpost_h2_floods_total", Help: "HTTP/2 connections sent GOAWAY for flooding control frames.", Counter: true, V: float64(n.h2.Floods.Load())},
	)
	return s
}
