package config

import (
	"strings"
	"testing"
)

func TestWasmFilterErrorsNameFileLineAndKey(t *testing.T) {
	expectParseErrors(t, []struct{ name, yaml, want string }{
		{"unknown filter", `
wasm:
  global: [nope]
`, "bad.yaml:3: wasm.global[0]: names no filter in wasm.filters: \"nope\""},
	})
	_, err := Parse("testdata/bad.yaml", []byte(`
wasm:
  filters:
    f: {file: missing.wasm, memory_pages: 70000, instances: -1}
routes:
  - {respond: {status: 200}, filters: [g]}
`))
	for _, want := range []string{"bad.yaml:4: wasm.filters.f.file: file ", "does not exist",
		"bad.yaml:4: wasm.filters.f.memory_pages: must be between 0 and 65536",
		"wasm.filters.f.instances: must not be negative", "bad.yaml:6: routes[0].filters[0]: names no filter in wasm.filters: \"g\""} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}
