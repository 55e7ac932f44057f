//go:build wasip1

// Command abrouter is an example Proxy-Wasm filter: a header-based A/B
// router. It puts each client in bucket "a" or "b" by a hash of its
// X-User-Id header (or, without one, its address) and tells the origin
// in the X-Variant request header. Its configuration is the share of
// clients in "b", in percent ("50" by default).
package main

import (
	"hash/fnv"
	"strconv"

	"github.com/outpost-edge/outpost/examples/wasm/proxywasm"
)

var percentB uint32 = 50

func main() {}

func init() {
	proxywasm.Filter.Configure = func(cfg []byte) bool {
		if len(cfg) == 0 {
			return true
		}
		p, err := strconv.ParseUint(string(cfg), 10, 32)
		if err != nil || p > 100 {
			proxywasm.Log("abrouter: configuration must be a percentage")
			return false
		}
		percentB = uint32(p)
		return true
	}
	proxywasm.Filter.RequestHeaders = func(uint32) proxywasm.Action {
		id, ok := proxywasm.Header(proxywasm.RequestHeaders, "x-user-id")
		if !ok {
			id, _ = proxywasm.Property("source", "address")
		}
		h := fnv.New32a()
		h.Write([]byte(id))
		variant := "a"
		if h.Sum32()%100 < percentB {
			variant = "b"
		}
		proxywasm.SetHeader(proxywasm.RequestHeaders, "x-variant", variant)
		return proxywasm.Continue
	}
}
