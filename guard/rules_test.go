package guard

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/limit"
)

var (
	chromeUA = "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
	browser  = []string{"Host: example.com", chromeUA, "Accept: text/html", "Accept-Language: en-US", "Accept-Encoding: gzip, br"}
)

// typicalRules is the rule set of the examples and benchmarks.
func typicalRules(t testing.TB) *Rules {
	rs, err := NewRules([]Rule{
		{Name: "office", Action: ActionAllow, IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:aa::/48")}},
		{Name: "blocklist", Action: ActionDeny, IPs: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24"), netip.MustParsePrefix("203.0.113.128/25")}},
		{Name: "scrapers", Action: ActionDeny, UserAgents: []string{"python-requests", "scrapy", ""}},
		{Name: "bad-tls", Action: ActionTarpit, JA4: []string{"t13d191000_9dc949149365_e7c285222651", "t12i*"}},
		{Name: "fake-browser", Action: ActionChallenge, Anomalies: AnomalyBrowserNoAccept | AnomalyBrowserNoLanguage | AnomalyBrowserHTTP10},
		{Name: "bots", Action: ActionRateLimit, Limit: "bots", UserAgentRegexp: `(?i)bot|crawler|spider`},
		{Name: "api", Action: ActionRateLimit, Limit: "api", PathPrefixes: []string{"/api/"}},
		{Name: "posts", Action: ActionChallenge, Match: func(a *Attrs) bool { return a.Request.IsMethod("POST") }},
		{Name: "flood", Action: ActionChallenge, RateOver: &RateOver{Count: 1 << 30}},
	})
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

var evaluateTests = []struct {
	name   string
	ip     string
	ja4    string
	method string
	fields []string
	want   Verdict
}{
	{"an ordinary browser matches nothing", "192.0.2.1", "", "GET", browser, Verdict{Next: 9}},
	{"the office allow list wins over later rules", "10.1.2.3", "", "GET", []string{"User-Agent: scrapy"}, Verdict{Action: ActionAllow, Rule: "office", Next: 1}},
	{"an IPv6 office address is allowed", "2001:db8:aa:1::5", "", "GET", nil, Verdict{Action: ActionAllow, Rule: "office", Next: 1}},
	{"a blocked CIDR is denied", "203.0.113.200", "", "GET", browser, Verdict{Action: ActionDeny, Rule: "blocklist", Next: 2}},
	{"an IPv4-mapped address is in the IPv4 list", "::ffff:198.51.100.7", "", "GET", browser, Verdict{Action: ActionDeny, Rule: "blocklist", Next: 2}},
	{"an address just outside the list is not", "203.0.113.127", "", "GET", browser, Verdict{Next: 9}},
	{"a scraper user agent is denied, ignoring case", "192.0.2.1", "", "GET", []string{"User-Agent: Python-Requests/2.31"}, Verdict{Action: ActionDeny, Rule: "scrapers", Next: 3}},
	{"a missing user agent matches the empty pattern", "192.0.2.1", "", "GET", []string{"Accept: */*"}, Verdict{Action: ActionDeny, Rule: "scrapers", Next: 3}},
	{"a listed JA4 is tarpitted with the default delay", "192.0.2.1", "t13d191000_9dc949149365_e7c285222651", "GET", browser, Verdict{Action: ActionTarpit, Rule: "bad-tls", Delay: DefaultTarpit, Next: 4}},
	{"a JA4 prefix pattern matches", "192.0.2.1", "t12i0604h1_aaaaaaaaaaaa_bbbbbbbbbbbb", "GET", browser, Verdict{Action: ActionTarpit, Rule: "bad-tls", Delay: DefaultTarpit, Next: 4}},
	{"a browser UA without Accept-Language is challenged", "192.0.2.1", "", "GET", []string{chromeUA, "Accept: */*"}, Verdict{Action: ActionChallenge, Rule: "fake-browser", Next: 5}},
	{"a crawler is rate limited", "192.0.2.1", "", "GET", []string{"User-Agent: ExampleBot/1.0"}, Verdict{Action: ActionRateLimit, Rule: "bots", Limit: "bots", Next: 6}},
	{"a POST hits the hook rule", "192.0.2.1", "", "POST", browser, Verdict{Action: ActionChallenge, Rule: "posts", Next: 8}},
}

func attrsFor(ip, ja4, method string, fields []string) *Attrs {
	var a Attrs
	a.Reset(netip.MustParseAddr(ip), ja4, newRequest(method, 1, 1, fields...))
	return &a
}

func TestEvaluate(t *testing.T) {
	rs := typicalRules(t)
	for _, tt := range evaluateTests {
		if got := rs.Evaluate(attrsFor(tt.ip, tt.ja4, tt.method, tt.fields)); got != tt.want {
			t.Errorf("%s: got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestEvaluateFromResumesAfterARateLimit(t *testing.T) {
	rs := typicalRules(t)
	a := attrsFor("192.0.2.1", "", "POST", []string{"User-Agent: ExampleBot/1.0"})
	v := rs.Evaluate(a)
	if v.Rule != "bots" {
		t.Fatalf("first verdict %+v", v)
	}
	if v = rs.EvaluateFrom(a, v.Next); v.Rule != "posts" {
		t.Fatalf("resumed verdict %+v, want the posts rule", v)
	}
}

func TestEvaluateMatchesJA4HPatterns(t *testing.T) {
	req := newRequest("GET", 1, 1, "user-agent: curl/8", "accept: */*")
	rs, err := NewRules([]Rule{{Name: "curl", Action: ActionDeny, JA4H: []string{"ge11nn020000_*"}}})
	if err != nil {
		t.Fatal(err)
	}
	var a Attrs
	a.Reset(netip.MustParseAddr("192.0.2.1"), "", req)
	if v := rs.Evaluate(&a); v.Rule != "curl" {
		t.Fatalf("verdict %+v for JA4H %s", v, a.JA4H())
	}
}

func TestAnomalies(t *testing.T) {
	tests := []struct {
		name   string
		minor  int
		fields []string
		want   Anomaly
	}{
		{"a complete browser head has none", 1, browser, 0},
		{"no user agent", 1, []string{"Accept: */*"}, AnomalyNoUserAgent},
		{"a non-browser agent owes nothing", 0, []string{"User-Agent: curl/8"}, 0},
		{"a bare browser agent over HTTP/1.0", 0, []string{chromeUA},
			AnomalyBrowserNoAccept | AnomalyBrowserNoLanguage | AnomalyBrowserNoEncoding | AnomalyBrowserHTTP10},
	}
	for _, tt := range tests {
		var a Attrs
		a.Reset(netip.Addr{}, "", newRequest("GET", 1, tt.minor, tt.fields...))
		if got := a.Anomalies(); got != tt.want {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if s := (AnomalyNoUserAgent | AnomalyBrowserHTTP10).String(); s != "no_user_agent|browser_http10" {
		t.Errorf("String() = %q", s)
	}
	if m, err := ParseAnomaly("browser_no_language"); err != nil || m != AnomalyBrowserNoLanguage {
		t.Errorf("ParseAnomaly = %v, %v", m, err)
	}
}

func TestNewRulesRefusesBrokenRules(t *testing.T) {
	tests := []struct {
		name string
		rule Rule
	}{
		{"no name", Rule{Action: ActionDeny}},
		{"no action", Rule{Name: "x"}},
		{"rate limit without a limit", Rule{Name: "x", Action: ActionRateLimit}},
		{"bad regexp", Rule{Name: "x", Action: ActionDeny, UserAgentRegexp: "("}},
	}
	for _, tt := range tests {
		if _, err := NewRules([]Rule{tt.rule}); !errors.Is(err, ErrBadRule) {
			t.Errorf("%s: err = %v, want ErrBadRule", tt.name, err)
		}
	}
}

func TestParseActionRoundTrip(t *testing.T) {
	for a := ActionAllow; a <= ActionRateLimit; a++ {
		if got, err := ParseAction(a.String()); err != nil || got != a {
			t.Errorf("ParseAction(%q) = %v, %v", a.String(), got, err)
		}
	}
	if _, err := ParseAction("none"); err == nil {
		t.Error("none parsed as an action")
	}
}

func TestEvaluateAllocatesNothing(t *testing.T) {
	rs := typicalRules(t)
	req := newRequest("GET", 1, 1, browser...)
	var a Attrs
	ip := netip.MustParseAddr("192.0.2.1")
	n := testing.AllocsPerRun(100, func() {
		a.Reset(ip, "t13d1516h2_8daaf6152771_e5627efa2ab1", req)
		rs.Evaluate(&a)
		a.JA4H()
	})
	if n != 0 {
		t.Fatalf("%v allocations per evaluation", n)
	}
}

func TestTarpitKeepsAnExplicitDelay(t *testing.T) {
	rs, err := NewRules([]Rule{{Name: "slow", Action: ActionTarpit, Delay: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if v := rs.Evaluate(&Attrs{Request: &httphead.Request{}}); v.Delay != time.Second {
		t.Fatalf("delay %v", v.Delay)
	}
}

func TestUserAgentPatternsOfPlainWordsMatchLikeTheRegexp(t *testing.T) {
	agents := []string{"Googlebot/2.1", "Mozilla/5.0 (compatible; BINGBOT)", "my-Crawler", "curl/8", "", "spider", "Spider", "robot"}
	for _, pattern := range []string{`(?i)bot|crawler|spider`, `bot|Crawler`, `spider`, `(?i)b[o]t`, `^curl/`, `(?i)^bot|crawler$`, `(?i)(bot|spider|crawl)`, `((?:bot))|(?i:spider)`} {
		rs, err := NewRules([]Rule{{Name: "p", Action: ActionDeny, UserAgentRegexp: pattern}})
		if err != nil {
			t.Fatal(err)
		}
		re := rs.rules[0].agentRE
		for _, ua := range agents {
			var a Attrs
			a.Reset(netip.Addr{}, "", newRequest("GET", 1, 1, "User-Agent: "+ua))
			if got, want := rs.rules[0].agentPatternMatches(&a), re.MatchString(ua); got != want {
				t.Errorf("pattern %s on %q: got %v, regexp says %v", pattern, ua, got, want)
			}
		}
	}
	for _, pattern := range []string{`(?i)Bot|crawler`, `(?i)(Bot|crawler)`} {
		if words, fold := literalAlternation(pattern); len(words) != 2 || !fold || words[0] != "bot" {
			t.Errorf("literalAlternation(%s) = %q %v", pattern, words, fold)
		}
	}
}

func TestRateOverMatchesOnlyAboveTheCount(t *testing.T) {
	shared := limit.NewRate(time.Second, 1024)
	build := func() *Rules {
		rs, err := NewRules([]Rule{
			{Name: "flood", Action: ActionChallenge, PathPrefixes: []string{"/search"}, RateOver: &RateOver{Count: 5, Estimator: shared}},
			{Name: "tls-flood", Action: ActionDeny, RateOver: &RateOver{Count: 2, By: ByJA4}},
		})
		if err != nil {
			t.Fatal(err)
		}
		return rs
	}
	rs := build()
	at := time.Now().Add(time.Hour)
	eval := func(rs *Rules, ip, ja4, path string, at time.Time) string {
		req := newRequest("GET", 1, 1, browser...)
		req.SetLine([]byte("GET"), []byte(path), []byte("example.com"), []byte("https"))
		var a Attrs
		a.Reset(netip.MustParseAddr(ip), ja4, req)
		a.Now = at
		return rs.Evaluate(&a).Rule
	}
	for i := range 5 {
		if got := eval(rs, "192.0.2.1", "", "/search?q=1", at); got != "" {
			t.Fatalf("request %d matched %q below the count", i+1, got)
		}
	}
	if got := eval(rs, "192.0.2.1", "", "/search?q=2", at); got != "flood" {
		t.Fatalf("6th request matched %q, want flood", got)
	}
	if got := eval(rs, "192.0.2.2", "", "/search", at); got != "" {
		t.Fatalf("another client matched %q", got)
	}
	if got := eval(build(), "192.0.2.1", "", "/search", at); got != "flood" {
		t.Fatalf("after rebuilding the rules with the shared estimator: %q, want flood", got)
	}
	if got := eval(rs, "192.0.2.1", "", "/search", at.Add(2*time.Second)); got != "" {
		t.Fatalf("two intervals later: %q", got)
	}
	for i, want := range []string{"", "", "tls-flood"} {
		if got := eval(rs, "192.0.2.9", "t13d1516h2_8daaf6152771_e5627efa2ab1", "/", at); got != want {
			t.Fatalf("JA4 request %d matched %q, want %q", i+1, got, want)
		}
	}
	if _, err := NewRules([]Rule{{Name: "x", Action: ActionDeny, RateOver: &RateOver{Count: -1}}}); !errors.Is(err, ErrBadRule) {
		t.Fatalf("negative count: %v", err)
	}
}
