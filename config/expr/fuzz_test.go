package expr

import "testing"

// FuzzCompile checks that no source makes Compile (or evaluating what it
// accepts) panic.
func FuzzCompile(f *testing.F) {
	for _, tt := range evalTests {
		f.Add(tt.src)
	}
	for _, tt := range compileErrorTests {
		f.Add(tt.src)
	}
	f.Add(`headers.all(k, headers[k] != "")`)
	f.Add(`int(query) > 3`)
	a, _ := testRequest()
	v := &Vars{Geo: fixedGeo("DE")}
	f.Fuzz(func(t *testing.T, src string) {
		p, err := Compile(src)
		if err != nil {
			return
		}
		v.Reset(a)
		_, _ = p.Eval(v)
	})
}
