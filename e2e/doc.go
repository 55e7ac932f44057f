// Package e2e holds Outpost's end-to-end tests: each starts a real node on
// loopback from a YAML config, in front of real origins (net/http, gRPC,
// WebSocket, misbehaving raw TCP servers), and talks to it with real
// clients. Nothing here is imported by the product.
package e2e
