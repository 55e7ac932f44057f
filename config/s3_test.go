package config

import "testing"

func TestS3UpstreamAndFallbackErrorsNameFileLineAndKey(t *testing.T) {
	expectParseErrors(t, []struct{ name, yaml, want string }{
		{"s3 without bucket", `upstreams:
  store:
    type: s3
    s3:
      endpoint: ftp://x
      key_prefix: /a
      credentials: {source: file}
routes:
  - upstream: store
`, "bad.yaml:4: upstreams.store.s3.bucket: is required\n" +
			"bad.yaml:5: upstreams.store.s3.endpoint: \"ftp://x\": want http(s)://host[:port], without path, query or user\n" +
			"bad.yaml:6: upstreams.store.s3.key_prefix: object keys do not start with /\n" +
			"bad.yaml:7: upstreams.store.s3.credentials.file: is required with source: file, and used only with it"},
		{"s3 block on an http upstream", `upstreams:
  app:
    servers: [{addr: "127.0.0.1:1"}]
    s3: {bucket: b}
routes:
  - upstream: app
`, "bad.yaml:4: upstreams.app.s3: is used only with type: s3"},
		{"failover to a bucket", `upstreams:
  app:
    servers: [{addr: "127.0.0.1:1"}]
    failover: {backup_upstream: store}
  store:
    type: s3
    s3: {bucket: b}
routes:
  - upstream: app
`, "bad.yaml:4: upstreams.app.failover.backup_upstream: failover is between HTTP upstreams; use routes[].fallback for a bucket"},
		{"fallback to an unknown upstream", `upstreams:
  app:
    servers: [{addr: "127.0.0.1:1"}]
routes:
  - upstream: app
    fallback: [app, archiv]
`, "bad.yaml:6: routes[0].fallback[0]: upstream \"app\" is already in the chain\n" +
			"bad.yaml:6: routes[0].fallback[1]: unknown upstream \"archiv\""},
	})
}
