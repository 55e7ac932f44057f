package guard_test

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/outpost-edge/outpost/guard"
	"github.com/outpost-edge/outpost/httphead"
)

// A rule list as the engine runs it for each request.
func ExampleRules() {
	rules, err := guard.NewRules([]guard.Rule{
		{Name: "office", Action: guard.ActionAllow, IPs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}},
		{Name: "scrapers", Action: guard.ActionDeny, UserAgentRegexp: `(?i)python-requests|scrapy`},
		{Name: "fake-browser", Action: guard.ActionChallenge, Anomalies: guard.AnomalyBrowserNoLanguage},
		{Name: "api", Action: guard.ActionRateLimit, Limit: "api", PathPrefixes: []string{"/api/"}},
	})
	if err != nil {
		panic(err)
	}
	var req httphead.Request
	req.SetLine([]byte("GET"), []byte("/api/items"), []byte("example.com"), []byte("https"))
	req.ProtoMajor, req.ProtoMinor = 1, 1
	req.Header.AddString("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")
	req.Header.AddString("Accept", "*/*")

	var attrs guard.Attrs
	attrs.Reset(netip.MustParseAddr("192.0.2.1"), "", &req)
	v := rules.Evaluate(&attrs)
	fmt.Println(v.Action, v.Rule)
	fmt.Printf("%s\n", attrs.JA4H())
	// Output:
	// challenge fake-browser
	// ge11nn020000_db6abae5e99a_000000000000_000000000000
}

// The challenge flow: a page for a client without a pass, then the pass
// cookie once its answer checks out.
func ExampleChallenge() {
	ch := &guard.Challenge{Secret: []byte("shared by every node, 16+ bytes"), Difficulty: 8}
	if err := ch.Provision(); err != nil {
		panic(err)
	}
	ip, ua, now := netip.MustParseAddr("192.0.2.1"), []byte("Mozilla/5.0"), time.Now()

	page := ch.AppendPage(nil, ip, ua, []byte("/wanted"), now) // serve with 403, no-store
	fmt.Println(len(page) > 0)

	// The page's script finds a nonce and posts it with the token to
	// ch.VerifyPath, where ch.ServeHTTP (or this) checks it and sets the
	// pass cookie.
	token := ch.NewToken(nil, ip, ua, now)
	for n := range 1 << 20 {
		if ch.Verify(token, strconv.AppendInt(nil, int64(n), 10), ip, ua, now) == nil {
			cookie := ch.AppendSetCookie(nil, ip, ua, now, true)
			fmt.Println(strings.HasPrefix(string(cookie), "__outpost_pass="))
			break
		}
	}
	// Output:
	// true
	// true
}
