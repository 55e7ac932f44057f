//go:build wasip1

// Command headers is an example Proxy-Wasm filter that rewrites response
// headers: it removes Server and X-Powered-By and sets the header its
// configuration names ("Name: value", default "X-Frame-Options: DENY").
package main

import (
	"strings"

	"github.com/outpost-edge/outpost/examples/wasm/proxywasm"
)

var name, value = "x-frame-options", "DENY"

func main() {}

func init() {
	proxywasm.Filter.Configure = func(cfg []byte) bool {
		if len(cfg) == 0 {
			return true
		}
		n, v, ok := strings.Cut(string(cfg), ":")
		name, value = strings.ToLower(strings.TrimSpace(n)), strings.TrimSpace(v)
		return ok && name != ""
	}
	proxywasm.Filter.ResponseHeaders = func(uint32) proxywasm.Action {
		proxywasm.RemoveHeader(proxywasm.ResponseHeaders, "server")
		proxywasm.RemoveHeader(proxywasm.ResponseHeaders, "x-powered-by")
		proxywasm.SetHeader(proxywasm.ResponseHeaders, name, value)
		return proxywasm.Continue
	}
}
