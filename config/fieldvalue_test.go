package config

import (
	"testing"
)

// TestHeaderInjectionIsRefused: every configured string that reaches a
// header field or a request line is checked, so a config cannot split a
// message (CR, LF), cut one short (NUL) or reframe it.
func TestHeaderInjectionIsRefused(t *testing.T) {
	expectParseErrors(t, []struct{ name, yaml, want string }{
		{"CR LF in request_set",
			"routes:\n  - respond: {}\n    headers:\n      request_set: {X-A: \"1\\r\\nGET /admin HTTP/1.1\"}\n",
			`bad.yaml:4: routes[0].headers.request_set.X-A: value "1\r\nGET /admin HTTP/1.1" has control byte 0x0d at offset 1, which a header field cannot carry`},
		{"LF in response_set",
			"routes:\n  - respond: {}\n    headers:\n      response_set: {X-A: \"1\\nSet-Cookie: s=evil\"}\n",
			`bad.yaml:4: routes[0].headers.response_set.X-A: value "1\nSet-Cookie: s=evil" has control byte 0x0a at offset 1, which a header field cannot carry`},
		{"NUL in a static response",
			"routes:\n  - respond:\n      headers: {X-A: \"a\\0b\"}\n",
			`bad.yaml:3: routes[0].respond.headers.X-A: value "a\x00b" has control byte 0x00 at offset 1, which a header field cannot carry`},
		{"DEL in a match value",
			"routes:\n  - respond: {}\n    match:\n      headers: {X-A: \"a\\x7f\"}\n",
			`bad.yaml:4: routes[0].match.headers.X-A: value "a\x7f" has control byte 0x7f at offset 1, which a header field cannot carry`},
		{"leading white space",
			"routes:\n  - respond: {}\n    headers:\n      request_set: {X-A: \" a\"}\n",
			`bad.yaml:4: routes[0].headers.request_set.X-A: value " a" must not start or end with white space`},
		{"bad name in request_set",
			"routes:\n  - respond: {}\n    headers:\n      request_set: {\"X-A\\r\\nX-B\": a}\n",
			`bad.yaml:4: routes[0].headers.request_set["X-A\r\nX-B"]: "X-A\r\nX-B" is not a valid header name`},
		{"framing field in response_set",
			"routes:\n  - respond: {}\n    headers:\n      response_set: {content-length: \"0\"}\n",
			`bad.yaml:4: routes[0].headers.response_set.content-length: content-length is set by the proxy itself (message framing or hop-by-hop) and cannot be configured`},
		{"hop-by-hop field in request_set",
			"routes:\n  - respond: {}\n    headers:\n      request_set: {Transfer-Encoding: chunked}\n",
			`bad.yaml:4: routes[0].headers.request_set.Transfer-Encoding: Transfer-Encoding is set by the proxy itself (message framing or hop-by-hop) and cannot be configured`},
		{"CR LF in the health check path",
			"upstreams:\n  o:\n    servers: [{addr: 'a:1'}]\n    health: {path: \"/hc HTTP/1.1\\r\\nX: y\"}\n",
			`bad.yaml:4: upstreams.o.health.path: "/hc HTTP/1.1\r\nX: y" has byte 0x20 at offset 3: a path cannot hold spaces or control characters`},
		{"LF in the challenge path",
			"protection:\n  challenge: {verify_path: \"/c\\n\"}\n",
			`bad.yaml:2: protection.challenge.verify_path: "/c\n" has byte 0x0a at offset 2: a path cannot hold spaces or control characters`},
	})
}

func TestHeaderValuesWithTabsAndNonASCIIAreAccepted(t *testing.T) {
	yaml := "routes:\n  - respond: {}\n    headers:\n      response_set: {X-A: \"a\\tb c\", X-B: \"caf\u00e9\"}\n"
	if _, err := Parse("ok.yaml", []byte(yaml)); err != nil {
		t.Fatal(err)
	}
}
