package config

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse checks that no input panics Parse, that every failure is a list
// of *Error, and that every accepted config survives a YAML round trip
// with the same fingerprint and no Diff.
func FuzzParse(f *testing.F) {
	for _, tt := range badConfigs {
		f.Add([]byte(tt.yaml))
	}
	for _, tt := range badProtection {
		f.Add([]byte(tt.yaml))
	}
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n"))
	f.Add([]byte("log: &l {<<: *l}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("testdata/fuzz.yaml", data)
		if err != nil {
			var list interface{ Unwrap() []error }
			if !errors.As(err, &list) {
				t.Fatalf("error is not a joined list: %v", err)
			}
			for _, e := range list.Unwrap() {
				var cerr *Error
				if !errors.As(e, &cerr) {
					t.Fatalf("error %q is %T, not *Error", e, e)
				}
			}
			return
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatalf("marshal: %v", err)
		}
		again, err := Parse("testdata/fuzz.yaml", out)
		if err != nil {
			t.Fatalf("accepted config does not re-parse: %v\n%s", err, out)
		}
		if again.Fingerprint() != c.Fingerprint() {
			t.Fatalf("fingerprint changed on round trip:\n%s", out)
		}
		if d := Diff(c, again); len(d) > 0 {
			t.Fatalf("round trip changed %v", d)
		}
	})
}
