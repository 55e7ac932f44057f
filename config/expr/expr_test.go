package expr

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/httphead"
)

// testRequest is a browser-like GET over TLS from 192.0.2.7.
func testRequest() (*guard.Attrs, *httphead.Request) {
	req := &httphead.Request{ProtoMajor: 1, ProtoMinor: 1}
	req.SetLine([]byte("GET"), []byte("/simple/pip/?format=json"), []byte("Files.Example.org"), []byte("https"))
	req.Header.AddString("Host", "files.example.org")
	req.Header.AddString("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0")
	req.Header.AddString("Accept", "application/json")
	req.Header.AddString("X-Tier", "gold")
	req.Header.AddString("X-Tier", "silver")
	a := &guard.Attrs{}
	a.Reset(netip.MustParseAddr("192.0.2.7"), "t13d1516h2_8daaf6152771_02713d6af862", req)
	return a, req
}

type fixedGeo string

func (g fixedGeo) Country(netip.Addr) string { return string(g) }

var evalTests = []struct {
	name, src string
	want      bool
}{
	{"method compares", `method == "GET"`, true},
	{"host is lowercased", `host == "files.example.org"`, true},
	{"path has no query", `path == "/simple/pip/"`, true},
	{"query without question mark", `query == "format=json"`, true},
	{"scheme", `scheme == "https"`, true},
	{"ip as text", `ip == "192.0.2.7"`, true},
	{"ip_in a prefix", `ip_in(ip, "192.0.2.0/24")`, true},
	{"ip_in another prefix", `ip_in(ip, "10.0.0.0/8")`, false},
	{"ip_in a single address", `ip_in(ip, "192.0.2.7")`, true},
	{"ip_in a list", `ip_in(ip, ["10.0.0.0/8", "192.0.2.0/25"])`, true},
	{"ip_in a computed prefix", `ip_in(ip, "192.0.2." + "0/24")`, true},
	{"ip_in not an address", `ip_in("nonsense", "0.0.0.0/0")`, false},
	{"header any case", `headers["user-agent"].startsWith("Mozilla/") && headers["ACCEPT"] == "application/json"`, true},
	{"repeated header gives first", `headers["x-tier"] == "gold"`, true},
	{"missing header is empty", `headers["x-missing"] == ""`, true},
	{"in tests presence", `"accept" in headers && !("cookie" in headers)`, true},
	{"has tests presence", `has(headers.accept) && !has(headers.cookie)`, true},
	{"size counts fields", `size(headers) == 5`, true},
	{"exists over names", `headers.exists(n, n == "x-tier")`, true},
	{"user_agent", `user_agent.contains("Firefox")`, true},
	{"matches with a constant pattern", `user_agent.matches("(?i)firefox/[0-9]+")`, true},
	{"ja4 prefix", `ja4.startsWith("t13d")`, true},
	{"ja4h is computed", `ja4h.startsWith("ge11")`, true},
	{"country from geo", `country == "FR"`, true},
	{"country in list", `country in ["BE", "FR"]`, true},
	{"strings extension", `path.upperAscii().split("/")[1] == "SIMPLE"`, true},
	{"boolean logic", `method == "POST" || (path.startsWith("/simple/") && !ip_in(ip, "10.0.0.0/8"))`, true},
}

func TestEvalReadsTheRequest(t *testing.T) {
	a, _ := testRequest()
	v := &Vars{Geo: fixedGeo("FR")}
	for _, tt := range evalTests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.src)
			if err != nil {
				t.Fatalf("Compile(%q): %v", tt.src, err)
			}
			v.Reset(a)
			got, err := p.Eval(v)
			if err != nil || got != tt.want {
				t.Errorf("Eval(%q) = %v, %v; want %v", tt.src, got, err, tt.want)
			}
		})
	}
}

func TestEvalWithoutRequestSeesEmptyStrings(t *testing.T) {
	v := &Vars{}
	for _, a := range []*guard.Attrs{nil, {}} {
		v.Reset(a)
		p := MustCompile(`ip == "" && method == "" && path == "" && headers["host"] == "" && size(headers) == 0 && ja4 == "" && ja4h == "" && country == "" && user_agent == ""`)
		if ok, err := p.Eval(v); !ok || err != nil {
			t.Errorf("attrs %v: Eval = %v, %v; want true", a, ok, err)
		}
	}
}

func TestEvalIPv6AndMappedAddresses(t *testing.T) {
	tests := []struct {
		ip, src string
		want    bool
	}{
		{"2001:db8::1", `ip_in(ip, "2001:db8::/32")`, true},
		{"2001:db8::1", `ip == "2001:db8::1"`, true},
		{"::ffff:10.1.2.3", `ip_in(ip, "10.0.0.0/8") && ip == "10.1.2.3"`, true},
		{"10.1.2.3", `ip_in(ip, "::ffff:10.0.0.0/104")`, false},
	}
	v := &Vars{}
	for _, tt := range tests {
		a := &guard.Attrs{}
		a.Reset(netip.MustParseAddr(tt.ip), "", nil)
		v.Reset(a)
		got, err := MustCompile(tt.src).Eval(v)
		if err != nil || got != tt.want {
			t.Errorf("ip %s: Eval(%q) = %v, %v; want %v", tt.ip, tt.src, got, err, tt.want)
		}
	}
}

var compileErrorTests = []struct {
	name, src, want string
}{
	{"empty", "  ", "expression is empty"},
	{"syntax error has a column", `method == `, "column 11: Syntax error"},
	{"unknown variable", `methd == "GET"`, "column 1: undeclared reference to 'methd'"},
	{"second line", "method == \"GET\" &&\n  pth == \"/\"", "line 2, column 3: undeclared reference to 'pth'"},
	{"not bool", `path`, "expression has type string; a condition must be bool"},
	{"type mismatch", `path == 1`, "found no matching overload for '_==_'"},
	{"bad literal prefix", `ip_in(ip, "10.0.0.0/33")`, `column 11: ip_in: bad CIDR "10.0.0.0/33"`},
	{"bad prefix in a list", `ip_in(ip, ["10.0.0.0/8", "nope"])`, `column 26: ip_in: bad CIDR "nope"`},
	{"bad constant regexp", `path.matches("(")`, "column 14: matches: error parsing regexp: missing closing ): `(`"},
	{"bad constant regexp, global form", `matches(path, "a(")`, "column 15: matches: error parsing regexp"},
	{"too long", strings.Repeat("a", MaxLen+1), "at most 4096 allowed"},
	{"too deep", strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100), "recursion limit exceeded"},
	{"too costly", `headers.exists(a, headers.exists(b, headers.exists(c, a + b + c == path)))`, "may cost up to"},
}

func TestCompileErrorsSayWhatAndWhere(t *testing.T) {
	for _, tt := range compileErrorTests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile(%q) error = %v; want it to contain %q", tt.src, err, tt.want)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
		})
	}
}

func TestEvalErrorsAreReported(t *testing.T) {
	v := &Vars{}
	v.Reset(nil)
	_, err := MustCompile(`ip_in(ip, path)`).Eval(v)
	if err == nil || !strings.Contains(err.Error(), "bad CIDR") {
		t.Errorf("Eval with a bad computed prefix: error = %v; want bad CIDR", err)
	}
}

func TestProgramString(t *testing.T) {
	if got := MustCompile(`true`).String(); got != "true" {
		t.Errorf("String() = %q", got)
	}
}

func TestStringProgramsAppendTheirResult(t *testing.T) {
	a, _ := testRequest()
	v := &Vars{}
	v.Reset(a)
	p, err := CompileString(`headers["x-tier"] + "|" + ip`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := p.AppendString([]byte("k:"), v)
	if err != nil || string(got) != "k:gold|192.0.2.7" {
		t.Errorf("AppendString = %q, %v", got, err)
	}
	if _, err := p.Eval(v); err == nil {
		t.Error("Eval of a string program succeeded")
	}
	if _, err := CompileString(`path == "/"`); err == nil || !strings.Contains(err.Error(), "a key must be string") {
		t.Errorf("CompileString of a condition: %v", err)
	}
	if _, err := MustCompile("true").AppendString(nil, v); err == nil {
		t.Error("AppendString of a condition succeeded")
	}
}

func TestManyValuesInOneEvalStayDistinct(t *testing.T) {
	a, _ := testRequest()
	v := &Vars{Geo: fixedGeo("FR")}
	v.Reset(a)
	// More reads than Vars has boxes, all alive until the comparison.
	p := MustCompile(`[ip, host, path, query, headers["accept"], headers["x-tier"], user_agent, ja4, country, ip, path, headers["accept"]].join(",") ==
		"192.0.2.7,files.example.org,/simple/pip/,format=json,application/json,gold," +
		"Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0,t13d1516h2_8daaf6152771_02713d6af862,FR,192.0.2.7,/simple/pip/,application/json"`)
	for i := range 3 { // again on the same Vars, reusing its boxes
		if ok, err := p.Eval(v); !ok || err != nil {
			t.Fatalf("eval %d = %v, %v", i, ok, err)
		}
	}
}

func TestResetForgetsThePreviousRequest(t *testing.T) {
	a, _ := testRequest()
	v := &Vars{Geo: fixedGeo("FR")}
	p := MustCompile(`ip == "" && country == "" && path == ""`)
	v.Reset(a)
	if ok, _ := p.Eval(v); ok {
		t.Fatal("the first request looks empty")
	}
	v.Reset(&guard.Attrs{}) // no address, no request
	if ok, err := p.Eval(v); !ok || err != nil {
		t.Errorf("after Reset, the previous request's values remain: %v, %v", ok, err)
	}
}
