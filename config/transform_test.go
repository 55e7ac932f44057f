package config

import "testing"

func TestCompressAndRewriteErrorsNameFileLineAndKey(t *testing.T) {
	expectParseErrors(t, []struct{ name, yaml, want string }{
		{"bad types and empty find", `upstreams:
  app:
    servers: [{addr: "127.0.0.1:1"}]
routes:
  - upstream: app
    compress:
      types: [text, Text/HTML]
    rewrite:
      replace:
        - {find: "", with: x}
`, "bad.yaml:7: routes[0].compress.types[0]: \"text\" is not a media type: want type/subtype, type/* or +suffix\n" +
			"bad.yaml:7: routes[0].compress.types[1]: \"Text/HTML\": write media types in lower case\n" +
			"bad.yaml:10: routes[0].rewrite.replace[0].find: must be 1 to 4096 bytes"},
		{"rewrite without pairs", `upstreams:
  app:
    servers: [{addr: "127.0.0.1:1"}]
routes:
  - upstream: app
    rewrite: {types: [application/json]}
`, "bad.yaml:6: routes[0].rewrite.replace: needs at least one find/with pair"},
	})
}
