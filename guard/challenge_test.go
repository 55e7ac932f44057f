package guard

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var (
	now      = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	clientIP = netip.MustParseAddr("2001:db8:1:2::10")
	clientUA = []byte("Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0")
)

func newChallenge(t testing.TB, difficulty int) *Challenge {
	t.Helper()
	c := &Challenge{Secret: []byte("0123456789abcdef0123456789abcdef"), Difficulty: difficulty}
	if err := c.Provision(); err != nil {
		t.Fatal(err)
	}
	return c
}

// solve finds a nonce the way the page does, within a bounded number of
// tries.
func solve(t testing.TB, token []byte) []byte {
	t.Helper()
	for n := range 1 << 24 {
		nonce := strconv.AppendInt(nil, int64(n), 10)
		if leadingZeroBits(sha256.Sum256(append(append([]byte(nil), token...), nonce...))) >= int(decodeDifficulty(t, token)) {
			return nonce
		}
	}
	t.Fatal("no nonce found in 2^24 tries")
	return nil
}

// unsolved returns a nonce that does not solve token.
func unsolved(t testing.TB, token []byte) []byte {
	t.Helper()
	for n := range 100 {
		nonce := []byte("x" + strconv.Itoa(n))
		if leadingZeroBits(sha256.Sum256(append(bytes.Clone(token), nonce...))) < int(decodeDifficulty(t, token)) {
			return nonce
		}
	}
	t.Fatal("every nonce tried solves the challenge")
	return nil
}

func decodeDifficulty(t testing.TB, token []byte) byte {
	var b [challengeLen]byte
	if _, err := base64.RawURLEncoding.Decode(b[:], token); err != nil {
		t.Fatal(err)
	}
	return b[1]
}

func TestMACIsHMACSHA256(t *testing.T) {
	for _, secret := range []string{"0123456789abcdef", strings.Repeat("k", 64), strings.Repeat("long", 40)} {
		c := &Challenge{Secret: []byte(secret)}
		if err := c.Provision(); err != nil {
			t.Fatal(err)
		}
		msg := []byte("message to sign")
		m := hmac.New(sha256.New, []byte(secret))
		m.Write(msg)
		if got := c.mac(msg); !bytes.Equal(got[:], m.Sum(nil)) {
			t.Errorf("secret of %d bytes: mac differs from crypto/hmac", len(secret))
		}
	}
}

func TestProvision(t *testing.T) {
	var c Challenge
	if err := c.Provision(); err != nil {
		t.Fatal(err)
	}
	if c.Difficulty != DefaultDifficulty || c.TTL != DefaultPassTTL || c.CookieName != DefaultCookieName || c.VerifyPath != DefaultVerifyPath {
		t.Fatalf("defaults not filled: %+v", c)
	}
	for _, bad := range []Challenge{{Secret: []byte("short")}, {Difficulty: 33}, {Difficulty: -1}} {
		if err := bad.Provision(); err == nil {
			t.Errorf("Provision accepted %+v", bad)
		}
	}
}

func TestVerifyAcceptsASolvedChallenge(t *testing.T) {
	c := newChallenge(t, 12)
	token := c.NewToken(nil, clientIP, clientUA, now)
	nonce := solve(t, token)
	if err := c.Verify(token, nonce, clientIP, clientUA, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// another address in the same /64 is the same client
	if err := c.Verify(token, nonce, netip.MustParseAddr("2001:db8:1:2::99"), clientUA, now); err != nil {
		t.Fatalf("same /64: %v", err)
	}
}

func TestVerifyRefusesBadAnswers(t *testing.T) {
	c := newChallenge(t, 12)
	token := c.NewToken(nil, clientIP, clientUA, now)
	nonce := solve(t, token)
	var raw [challengeLen]byte
	base64.RawURLEncoding.Decode(raw[:], token)
	raw[1] = 1 // lower the difficulty
	tampered := base64.RawURLEncoding.AppendEncode(nil, raw[:])

	other := newChallenge(t, 12)
	other.Secret = []byte("another secret, another node...")
	other.Provision()

	tests := []struct {
		name         string
		c            *Challenge
		token, nonce []byte
		ip           string
		ua           []byte
		at           time.Time
		want         error
	}{
		{"another client address", c, token, nonce, "2001:db8:1:3::10", clientUA, now, ErrForged},
		{"another user agent", c, token, nonce, clientIP.String(), []byte("curl/8"), now, ErrForged},
		{"another secret", other, token, nonce, clientIP.String(), clientUA, now, ErrForged},
		{"a tampered token", c, tampered, nonce, clientIP.String(), clientUA, now, ErrForged},
		{"too late", c, token, nonce, clientIP.String(), clientUA, now.Add(DefaultChallengeTTL), ErrExpired},
		{"a wrong nonce", c, token, unsolved(t, token), clientIP.String(), clientUA, now, ErrUnsolved},
		{"garbage", c, []byte("not-a-token"), nonce, clientIP.String(), clientUA, now, ErrMalformed},
		{"a pass in place of a challenge", c, c.AppendPass(nil, clientIP, clientUA, now)[len(DefaultCookieName)+1:], nonce, clientIP.String(), clientUA, now, ErrMalformed},
		{"a long nonce", c, token, bytes.Repeat([]byte("1"), 100), clientIP.String(), clientUA, now, ErrMalformed},
	}
	for _, tt := range tests {
		if err := tt.c.Verify(tt.token, tt.nonce, netip.MustParseAddr(tt.ip), tt.ua, tt.at); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func passValue(c *Challenge, ip netip.Addr, ua []byte, at time.Time) []byte {
	return c.AppendPass(nil, ip, ua, at)[len(c.CookieName)+1:]
}

func TestCheckPass(t *testing.T) {
	c := newChallenge(t, 12)
	other := &Challenge{Secret: []byte("another secret, another node...")}
	other.Provision()
	good := passValue(c, clientIP, clientUA, now)
	forged := passValue(other, clientIP, clientUA, now)
	var raw [passLen]byte
	base64.RawURLEncoding.Decode(raw[:], good)
	raw[passLen-1] ^= 1 // a bit of the MAC
	flipped := base64.RawURLEncoding.AppendEncode(nil, raw[:])
	tests := []struct {
		name  string
		value []byte
		ip    string
		ua    []byte
		at    time.Time
		want  error
	}{
		{"a fresh pass", good, clientIP.String(), clientUA, now.Add(time.Hour), nil},
		{"from another address of the /64", good, "2001:db8:1:2::1", clientUA, now, nil},
		{"from another /64", good, "2001:db8:9:2::10", clientUA, now, ErrForged},
		{"with another user agent", good, clientIP.String(), []byte("curl/8"), now, ErrForged},
		{"signed with another secret", forged, clientIP.String(), clientUA, now, ErrForged},
		{"with a flipped bit", flipped, clientIP.String(), clientUA, now, ErrForged},
		{"expired", good, clientIP.String(), clientUA, now.Add(DefaultPassTTL), ErrExpired},
		{"empty", nil, clientIP.String(), clientUA, now, ErrMalformed},
		{"not base64", []byte("!!!!!!!!!!!!!!!!!!!!!!!!!!!!"), clientIP.String(), clientUA, now, ErrMalformed},
	}
	for _, tt := range tests {
		if err := c.CheckPass(tt.value, netip.MustParseAddr(tt.ip), tt.ua, tt.at); !errors.Is(err, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestPassedReadsThePassAmongOtherCookies(t *testing.T) {
	c := newChallenge(t, 12)
	cookie := string(c.AppendPass(nil, clientIP, clientUA, now))
	req := newRequest("GET", 1, 1, "User-Agent: "+string(clientUA), "Cookie: theme=dark", "Cookie: a=1; "+cookie+"; b=2")
	if !c.Passed(req, clientIP, now) {
		t.Fatal("valid pass not seen")
	}
	if c.Passed(req, netip.MustParseAddr("192.0.2.1"), now) {
		t.Fatal("pass accepted from another address")
	}
	if c.Passed(newRequest("GET", 1, 1, "User-Agent: "+string(clientUA)), clientIP, now) {
		t.Fatal("no cookie passed")
	}
	if n := testing.AllocsPerRun(100, func() { c.Passed(req, clientIP, now) }); n != 0 {
		t.Fatalf("%v allocations per pass check", n)
	}
}

func TestSetCookieAttributes(t *testing.T) {
	c := newChallenge(t, 12)
	got := string(c.AppendSetCookie(nil, clientIP, clientUA, now, true))
	if !strings.HasPrefix(got, DefaultCookieName+"=") || !strings.HasSuffix(got, "; Path=/; Max-Age=86400; HttpOnly; SameSite=Lax; Secure") {
		t.Fatalf("Set-Cookie %q", got)
	}
}

var formValue = regexp.MustCompile(`name="(\w)"(?: id="\w+")? value="([^"]*)"`)

func TestContentSecurityPolicyAllowsThePageScriptOnly(t *testing.T) {
	c := newChallenge(t, 12)
	page := c.AppendPage(nil, clientIP, clientUA, []byte("/"), now)
	_, rest, _ := bytes.Cut(page, []byte("<script>"))
	script, _, _ := bytes.Cut(rest, []byte("</script>"))
	sum := sha256.Sum256(script)
	want := "script-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	if csp := c.ContentSecurityPolicy(); !strings.Contains(csp, want) || !strings.HasPrefix(csp, "default-src 'none'") {
		t.Fatalf("CSP %q does not allow the served script (%s)", csp, want)
	}
	custom := &Challenge{Page: []byte("<script>var t = '{{token}}';</script>")}
	custom.Provision()
	if csp := custom.ContentSecurityPolicy(); csp != "" {
		t.Fatalf("CSP %q for a script that changes per request", csp)
	}
}

func TestAppendPageFillsTheTemplate(t *testing.T) {
	c := newChallenge(t, 12)
	page := string(c.AppendPage(nil, clientIP, clientUA, []byte(`/search?q="<x>"&y=1`), now))
	if strings.Contains(page, "{{") {
		t.Fatal("placeholder left in the page")
	}
	if !strings.Contains(page, `data-bits="12"`) || !strings.Contains(page, `action="/.outpost/challenge"`) {
		t.Fatal("difficulty or action missing")
	}
	if !strings.Contains(page, `value="/search?q=&#34;&lt;x&gt;&#34;&amp;y=1"`) {
		t.Fatal("return path not escaped")
	}
	for _, target := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example", ""} {
		page := string(c.AppendPage(nil, clientIP, clientUA, []byte(target), now))
		if !strings.Contains(page, `name="r" value="/"`) {
			t.Errorf("return path %q kept: open redirect", target)
		}
	}
}

// TestThePageScriptSolvesTheChallenge runs the page's own script under
// Node.js (when installed) with a stub DOM and checks its answer in Go.
func TestThePageScriptSolvesTheChallenge(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node not installed")
	}
	c := newChallenge(t, 16)
	page := c.AppendPage(nil, clientIP, clientUA, []byte("/"), now)
	_, rest, _ := bytes.Cut(page, []byte("<script>"))
	script, _, _ := bytes.Cut(rest, []byte("</script>"))
	token := formValue.FindAllStringSubmatch(string(page), -1)[0][2]
	stub := `var els = {}; var document = { getElementById: function (id) {
  return els[id] || (els[id] = { value: "", textContent: "",
    elements: { c: { value: "` + token + `" } },
    getAttribute: function (name) { return name === "data-bits" ? "` + strconv.Itoa(c.Difficulty) + `" : null; },
    submit: function () {
      console.log(els.nonce.value); console.error("solved in", Date.now() - start, "ms"); process.exit(0); } }); } };
var start = Date.now();
`
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "-e", stub+string(script))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node: %v: %s", err, stderr.Bytes())
	}
	t.Logf("difficulty %d: %s", c.Difficulty, bytes.TrimSpace(stderr.Bytes()))
	nonce := bytes.TrimSpace(out)
	if err := c.Verify([]byte(token), nonce, clientIP, clientUA, now); err != nil {
		t.Fatalf("the script's nonce %q: %v", nonce, err)
	}
}

func TestServeHTTPSetsThePassAndRedirects(t *testing.T) {
	c := newChallenge(t, 10)
	c.ClientIP = func(*http.Request) netip.Addr { return clientIP }
	srv := httptest.NewServer(c)
	defer srv.Close()
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	post := func(form url.Values) *http.Response {
		req, _ := http.NewRequest("POST", srv.URL+DefaultVerifyPath, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("User-Agent", string(clientUA))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	token := c.NewToken(nil, clientIP, clientUA, time.Now())
	nonce := solve(t, token)

	resp := post(url.Values{"c": {string(token)}, "n": {string(nonce)}, "r": {"/article?id=7"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/article?id=7" {
		t.Fatalf("solved: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	cookies := resp.Cookies()
	if len(cookies) != 1 || c.CheckPass([]byte(cookies[0].Value), clientIP, clientUA, time.Now()) != nil {
		t.Fatalf("no valid pass set: %v", resp.Header["Set-Cookie"])
	}

	if resp := post(url.Values{"c": {string(token)}, "n": {string(nonce)}, "r": {"//evil.example/"}}); resp.Header.Get("Location") != "/" {
		t.Fatalf("redirected to %q", resp.Header.Get("Location"))
	}
	if resp := post(url.Values{"c": {string(token)}, "n": {string(unsolved(t, token))}}); resp.StatusCode != http.StatusForbidden || len(resp.Cookies()) != 0 {
		t.Fatalf("unsolved: %d %v", resp.StatusCode, resp.Cookies())
	}
	if resp := post(url.Values{"c": {"forged"}, "n": {"1"}}); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged: %d", resp.StatusCode)
	}
	get, err := client.Get(srv.URL + DefaultVerifyPath)
	if err != nil {
		t.Fatal(err)
	}
	get.Body.Close()
	if get.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", get.StatusCode)
	}
}

func FuzzCheckPass(f *testing.F) {
	c := newChallenge(f, 12)
	f.Add(passValue(c, clientIP, clientUA, now), []byte("1.2.3.4"))
	f.Add([]byte("AAAAAAAAAAAAAAAAAAAAAAAAAAAA"), []byte("::1"))
	f.Add([]byte{}, []byte{})
	f.Fuzz(func(t *testing.T, value, ip []byte) {
		addr, _ := netip.ParseAddr(string(ip))
		if c.CheckPass(value, addr, clientUA, now) != nil {
			return
		}
		// accepted: it must carry the MAC this secret gives its head
		var p [passLen]byte
		base64.RawURLEncoding.Decode(p[:], value)
		if m := c.signed(p[:5], addr, clientUA); !bytes.Equal(m[:passMACLen], p[5:]) {
			t.Fatalf("forged pass %q accepted", value)
		}
	})
}

func FuzzVerify(f *testing.F) {
	c := newChallenge(f, 8)
	token := c.NewToken(nil, clientIP, clientUA, now)
	f.Add(token, solve(f, token))
	f.Add([]byte("short"), []byte("1"))
	f.Fuzz(func(t *testing.T, token, nonce []byte) {
		c.Verify(token, nonce, clientIP, clientUA, now) // must not panic
	})
}

func TestAnswerWithoutNetHTTP(t *testing.T) {
	c := newChallenge(t, 10)
	token := c.NewToken(nil, clientIP, clientUA, now)
	body := "c=" + string(token) + "&n=" + string(solve(t, token)) + "&r=%2Fdocs%3Fpage%3D2"
	cookie, location, err := c.Answer([]byte(body), clientIP, clientUA, now, false)
	if err != nil || location != "/docs?page=2" || !bytes.HasPrefix(cookie, []byte(DefaultCookieName+"=")) {
		t.Fatalf("Answer = %q, %q, %v", cookie, location, err)
	}
	if _, _, err := c.Answer([]byte("c=%zz"), clientIP, clientUA, now, false); !errors.Is(err, ErrMalformed) {
		t.Fatalf("bad form: %v", err)
	}
}

// TestMiddlewareKeepsPlainClientsOut walks the whole flow over loopback: a
// client that cannot run the script stays on the challenge page, forged
// cookies are refused, and a solved challenge lets the client through.
func TestMiddlewareKeepsPlainClientsOut(t *testing.T) {
	c := newChallenge(t, 10)
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("the article")) })
	srv := httptest.NewServer(c.Middleware(origin))
	defer srv.Close()
	client := &http.Client{Timeout: 5 * time.Second}
	get := func(cookie string) (int, string, string) {
		req, _ := http.NewRequest("GET", srv.URL+"/article?id=7", nil)
		req.Header.Set("User-Agent", string(clientUA))
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header.Get("Content-Security-Policy"), body.String()
	}

	for range 3 { // a curl-like client asks again and again
		status, csp, body := get("")
		if status != http.StatusForbidden || !strings.Contains(body, "Checking your browser") || csp == "" {
			t.Fatalf("plain client: %d %q", status, body[:min(len(body), 80)])
		}
	}
	ip := netip.MustParseAddr("127.0.0.1")
	other := &Challenge{Secret: []byte("not the server's secret, forged.")}
	other.Provision()
	for _, forged := range []string{
		DefaultCookieName + "=" + string(passValue(other, ip, clientUA, time.Now())),
		DefaultCookieName + "=" + string(passValue(c, ip, clientUA, time.Now().Add(-DefaultPassTTL-time.Minute))),
		DefaultCookieName + "=" + string(passValue(c, netip.MustParseAddr("127.0.0.2"), clientUA, time.Now())),
		DefaultCookieName + "=AAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	} {
		if status, _, _ := get(forged); status != http.StatusForbidden {
			t.Fatalf("forged cookie %q let through: %d", forged, status)
		}
	}

	_, _, page := get("")
	token := formValue.FindAllStringSubmatch(page, -1)[0][2]
	form := url.Values{"c": {token}, "n": {string(solve(t, []byte(token)))}, "r": {"/article?id=7"}}
	req, _ := http.NewRequest("POST", srv.URL+DefaultVerifyPath, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("User-Agent", string(clientUA))
	jar := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := jar.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if len(resp.Cookies()) != 1 {
		t.Fatalf("no pass after solving: %d", resp.StatusCode)
	}
	pass := resp.Cookies()[0]
	if status, _, body := get(pass.Name + "=" + pass.Value); status != http.StatusOK || body != "the article" {
		t.Fatalf("with the pass: %d %q", status, body)
	}
}
