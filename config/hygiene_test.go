package config

import (
	"strings"
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
}

func TestHygieneSettingsAreChecked(t *testing.T) {
	for _, tt := range hygieneConfigs {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("testdata/bad.yaml", []byte(tt.yaml))
			if err == nil {
				t.Fatalf("Parse succeeded, want error:\n%s", tt.want)
			}
			if got := strings.ReplaceAll(err.Error(), "testdata/bad.yaml", "bad.yaml"); got != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}
