package expr

import "testing"

var benchExprs = []struct{ name, src string }{
	{"method", `method == "GET"`},
	{"ip_in", `ip_in(ip, "10.0.0.0/8")`},
	{"ip_in_list", `ip_in(ip, ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"])`},
	{"header", `headers["user-agent"].contains("curl")`},
	{"typical_rule", `method == "POST" && !ip_in(ip, "10.0.0.0/8")`},
	{"path_and_header", `path.startsWith("/simple/") && headers["accept"].contains("json")`},
	{"matches", `user_agent.matches("(?i)(curl|wget|python-requests)")`},
	{"ja4h", `ja4h.startsWith("ge11")`},
}

// BenchmarkEval measures one evaluation over a reused Vars, as the engine
// does per request. The Attrs are not reset, so ja4h is read from its
// cache, as it is for every rule after the first that needs it.
func BenchmarkEval(b *testing.B) {
	a, _ := testRequest()
	for _, bb := range benchExprs {
		b.Run(bb.name, func(b *testing.B) {
			p := MustCompile(bb.src)
			v := &Vars{}
			b.ReportAllocs()
			for b.Loop() {
				v.Reset(a)
				if _, err := p.Eval(v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompile(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		MustCompile(`method == "POST" && !ip_in(ip, "10.0.0.0/8")`)
	}
}

// BenchmarkMatcher is an expression as a guard rule condition, with its
// pooled Vars.
func BenchmarkMatcher(b *testing.B) {
	a, _ := testRequest()
	m := MustCompile(`method == "POST" || !ip_in(ip, "10.0.0.0/8")`).Matcher(nil, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !m(a) {
			b.Fatal("no match")
		}
	}
}
