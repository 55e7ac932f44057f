package config

import (
	"reflect"
	"testing"
)

func TestDiffListsChangedSettings(t *testing.T) {
	old, err := Parse("old.yaml", []byte(`
upstreams:
  app: {servers: [{addr: "a:1"}]}
  gone: {servers: [{addr: "g:1"}]}
routes:
  - {name: a, upstream: app, match: {path_prefix: /a/}}
  - {name: b, upstream: app}
`))
	if err != nil {
		t.Fatal(err)
	}
	new, err := Parse("new.yaml", []byte(`
listeners: [{addr: "127.0.0.1:8080", tls: {certs: [{cert: testdata/cert.pem, key: testdata/key.pem}]}}]
upstreams:
  app: {servers: [{addr: "a:1"}, {addr: "a:2", weight: 2}], connect_timeout: 1s}
  added: {servers: [{addr: "n:1"}]}
routes:
  - {name: a, upstream: app, match: {path_prefix: /a/}, cache: {default_ttl: 1d}}
log: {level: debug}
`))
	if err != nil {
		t.Fatal(err)
	}
	// Whole entries that appear or go are shown as one-line YAML; only the
	// short ones are spelt out here.
	const added, removed = "(added)", "(removed)"
	want := []Change{
		{Key: "listeners[0].tls", New: added},
		{Key: "upstreams.added", New: added},
		{Key: "upstreams.app.servers[1]", New: "{addr: 'a:2', weight: 2, backup: false}"},
		{Key: "upstreams.app.connect_timeout", Old: "5s", New: "1s"},
		{Key: "upstreams.gone", Old: removed},
		{Key: "routes[0].cache.default_ttl", Old: "0s", New: "24h0m0s"},
		{Key: "routes[1]", Old: removed},
		{Key: "log.level", Old: "info", New: "debug"},
	}
	got := Diff(old, new)
	for i := range got {
		if i < len(want) && want[i].New == added && got[i].Old == "" && got[i].New != "" {
			got[i].New = added
		}
		if i < len(want) && want[i].Old == removed && got[i].New == "" && got[i].Old != "" {
			got[i].Old = removed
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Diff =\n%q\nwant\n%q", got, want)
	}
	if d := Diff(old, old); len(d) != 0 {
		t.Errorf("Diff of a config with itself = %v", d)
	}
}

func TestChangeUnderMatchesWholeKeys(t *testing.T) {
	c := Change{Key: "routes[1].cache.default_ttl"}
	for key, want := range map[string]bool{
		"routes": true, "routes[1]": true, "routes[1].cache": true, "routes[1].cache.default_ttl": true,
		"route": false, "routes[1].cache.default": false, "routes[10]": false, "log": false,
	} {
		if got := c.Under(key); got != want {
			t.Errorf("Under(%q) = %v, want %v", key, got, want)
		}
	}
}
