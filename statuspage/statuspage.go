// Package statuspage is the admin listener's status page: one HTML file
// with its script, embedded in the binary, that polls the node's
// /status.json each second and draws its charts as SVG itself (no chart
// library, nothing loaded from elsewhere).
package statuspage

import (
	_ "embed"
	"net/http"
)

//go:embed status.html
var page []byte

// Handler serves the page.
func Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; frame-ancestors 'none'")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Write(page)
	})
}
