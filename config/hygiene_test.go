package config

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// hygieneConfigs are configs refused because a default that keeps the node
// safe on the open internet would be weakened or left unsaid.
var hygieneConfigs = []struct{ name, yaml, want string }{
	{"PROXY protocol without the balancers' networks",
		"listeners:\n  - addr: 127.0.0.1:0\n    proxy_protocol: true\n",
		`bad.yaml:2: listeners[0].proxy_protocol_from: is required with proxy_protocol: list the networks of the load balancers that send PROXY headers`},
	{"PROXY networks without PROXY protocol",
		"listeners:\n  - addr: 127.0.0.1:0\n    proxy_protocol_from: [10.0.0.0/8]\n",
		`bad.yaml:3: listeners[0].proxy_protocol_from: is only used with proxy_protocol: true`},
	{"HTTP/3 without TLS",
		"listeners:\n  - addr: 127.0.0.1:0\n    http3: true\n",
		`bad.yaml:3: listeners[0].http3: needs tls: HTTP/3 is always encrypted`},
	{"h2c upgrades",
		"proxy:\n  upgrade_allow: [websocket, H2C]\n",
		`bad.yaml:2: proxy.upgrade_allow[1]: h2c is never forwarded: an h2c tunnel would carry requests past every rule`},
	{"bad names in the strip lists",
		"proxy:\n  strip_request_headers: ['X Debug']\n  keep_request_headers: ['']\n",
		"bad.yaml:2: proxy.strip_request_headers[0]: \"X Debug\" is not a valid header name\n" +
			`bad.yaml:3: proxy.keep_request_headers[0]: "" is not a valid header name`},
	{"trace token from a file and a variable",
		"debug:\n  trace_token_file: trace.token\n  trace_token_env: TRACE\n",
		"bad.yaml:2: debug.trace_token_file: file " + abs("testdata/trace.token") + " does not exist\n" +
			`bad.yaml:3: debug.trace_token_env: set trace_token_file or trace_token_env, not both`},
	{"bad trace network",
		"debug:\n  trace_from: [loopback]\n",
		`bad.yaml:2: debug.trace_from[0]: bad CIDR "loopback": want an address or a prefix such as 10.0.0.0/8`},
}

func TestHygieneSettingsAreChecked(t *testing.T) {
	expectParseErrors(t, hygieneConfigs)
}

func TestTraceAndUpgradeDefaults(t *testing.T) {
	c := Default()
	if got := fmt.Sprint(c.Debug.TraceFrom); got != "[127.0.0.0/8 ::1/128]" {
		t.Errorf("debug.trace_from defaults to %s, want loopback only", got)
	}
	if got := fmt.Sprint(c.Proxy.UpgradeAllow); got != "[websocket]" {
		t.Errorf("proxy.upgrade_allow defaults to %s", got)
	}
	c, err := Parse("ok.yaml", []byte("debug: {trace_from: []}\nproxy: {upgrade_allow: []}\n"))
	if err != nil || len(c.Debug.TraceFrom) != 0 || len(c.Proxy.UpgradeAllow) != 0 {
		t.Errorf("explicit empty lists: %v, %v, %v", c.Debug.TraceFrom, c.Proxy.UpgradeAllow, err)
	}
}

func TestTraceTokenIsReadAndMustBeLong(t *testing.T) {
	file := filepath.Join(t.TempDir(), "trace.token")
	os.WriteFile(file, []byte("  0123456789abcdef\n"), 0o600)
	d := Debug{TraceTokenFile: file}
	if token, err := d.TraceToken(); token != "0123456789abcdef" || err != nil {
		t.Errorf("TraceToken = %q, %v", token, err)
	}
	t.Setenv("OUTPOST_TRACE", "short")
	d = Debug{TraceTokenEnv: "OUTPOST_TRACE"}
	if _, err := d.TraceToken(); err == nil {
		t.Error("a 5-byte token was accepted")
	}
	if token, err := (&Debug{}).TraceToken(); token != "" || err != nil {
		t.Errorf("no token: %q, %v", token, err)
	}
}
