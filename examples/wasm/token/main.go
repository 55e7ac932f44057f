//go:build wasip1

// Command token is an example Proxy-Wasm filter: a token check. A request
// without "Authorization: Bearer <token>", where <token> is the filter's
// configuration, is answered 403 by the filter itself.
package main

import "github.com/outpost-edge/outpost/examples/wasm/proxywasm"

var token string

func main() {}

func init() {
	proxywasm.Filter.Configure = func(cfg []byte) bool {
		token = string(cfg)
		return token != ""
	}
	proxywasm.Filter.RequestHeaders = func(uint32) proxywasm.Action {
		if v, _ := proxywasm.Header(proxywasm.RequestHeaders, "authorization"); v == "Bearer "+token {
			proxywasm.RemoveHeader(proxywasm.RequestHeaders, "authorization")
			return proxywasm.Continue
		}
		proxywasm.SendLocalResponse(403, "forbidden\n", "content-type", "text/plain", "x-denied-by", "token")
		return proxywasm.Pause
	}
}
