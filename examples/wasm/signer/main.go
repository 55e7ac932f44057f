//go:build wasip1

// Command signer is an example Proxy-Wasm filter that signs requests for
// the origin: it sets X-Signature-Time to the Unix time and X-Signature
// to the hex HMAC-SHA256, keyed by its configuration, of
// "METHOD\nPATH\nTIME" (PATH with its query, as sent).
package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	"github.com/outpost-edge/outpost/examples/wasm/proxywasm"
)

var key []byte

func main() {}

func init() {
	proxywasm.Filter.Configure = func(cfg []byte) bool {
		key = cfg
		return len(key) > 0
	}
	proxywasm.Filter.RequestHeaders = func(uint32) proxywasm.Action {
		method, _ := proxywasm.Header(proxywasm.RequestHeaders, ":method")
		path, _ := proxywasm.Header(proxywasm.RequestHeaders, ":path")
		now := strconv.FormatInt(time.Now().Unix(), 10)
		m := hmac.New(sha256.New, key)
		m.Write([]byte(method + "\n" + path + "\n" + now))
		proxywasm.SetHeader(proxywasm.RequestHeaders, "x-signature-time", now)
		proxywasm.SetHeader(proxywasm.RequestHeaders, "x-signature", hex.EncodeToString(m.Sum(nil)))
		return proxywasm.Continue
	}
}
