//go:build wasip1

// Command jsonrewrite is an example Proxy-Wasm filter that rewrites JSON
// response bodies: in a response whose Content-Type is application/json
// and whose body is a JSON object, it sets the top-level fields of its
// configuration (itself a JSON object, e.g. {"edge": "outpost"}) and
// removes those whose value there is null. The route's filter needs a
// body_limit so that the host gives it the body.
package main

import (
	"encoding/json"
	"strings"

	"github.com/outpost-edge/outpost/examples/wasm/proxywasm"
)

var edits map[string]json.RawMessage

func main() {}

func init() {
	proxywasm.Filter.Configure = func(cfg []byte) bool {
		return json.Unmarshal(cfg, &edits) == nil
	}
	proxywasm.Filter.ResponseBody = func(_, size uint32) proxywasm.Action {
		if ct, _ := proxywasm.Header(proxywasm.ResponseHeaders, "content-type"); !strings.HasPrefix(ct, "application/json") {
			return proxywasm.Continue
		}
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(proxywasm.GetBuffer(proxywasm.ResponseBody, 0, size), &doc); err != nil {
			return proxywasm.Continue // not an object: left as it is
		}
		for k, v := range edits {
			if string(v) == "null" {
				delete(doc, k)
			} else {
				doc[k] = v
			}
		}
		b, err := json.Marshal(doc)
		if err == nil {
			proxywasm.ReplaceBody(proxywasm.ResponseBody, b)
		}
		return proxywasm.Continue
	}
}
