// Package proxy is Outpost's request lifecycle engine: it takes one request
// from a downstream Session (HTTP/1.1, HTTP/2 or h2c: the protocol is the
// server's business), runs it through a fixed sequence of named phases, and
// writes the response back. It knows no config syntax and no storage layout;
// the config-driven behaviour (package edge) is one implementation of the
// phases, and a Go program can supply its own.
//
// The phases, in order:
//
//	downstream request
//	      │
//	EarlyRequest ──(answered)──────────────────────────────┐
//	      │                                                │
//	Route  (chooses route: upstream, cache policy)         │
//	      │                                                │
//	[cache lookup ── hit ────────────────────────────┐     │
//	      │ miss / pass / revalidate                 │     │
//	UpstreamRequest (edit the request sent upstream) │     │
//	      │                                          │     │
//	attempt: pick peer → round trip ─(retryable)─┐   │     │
//	      │              ▲                       │   │     │
//	      │              └──── next peer ◄───────┘   │     │
//	UpstreamResponse (edit the origin's response)    │     │
//	      │ [store in cache]                         │     │
//	Response (edit the response to the client) ◄─────┘     │
//	ResponseBody (may replace the body sent)               │
//	      │                                                │
//	body streamed to the client ◄──────────────────────────┘
//	      │
//	Logging (always, once)           ErrorResponse: when any step fails
//
// Each phase is a one-method interface. An App implements the ones it needs;
// the Engine checks which once, when it is built, not on every request.
// Hooks get the downstream request read-only (Ctx.Request) and a separate
// upstream request to edit, as net/http/httputil's ProxyRequest does; only
// RequestFilter, which runs before the cache lookup, may edit the
// request's header fields and replace its body (Ctx.SetRequestBody), as
// Proxy-Wasm filters do.
package proxy
