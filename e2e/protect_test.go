package e2e

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math/bits"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/outpost-edge/outpost/geoip"
	"github.com/outpost-edge/outpost/guard"
)

// protectOrigin answers every request with a fixed text, so a response
// that carries it came from the origin.
const protectOriginText = "origin says hello"

func protectOrigin(t *testing.T) string {
	return serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		io.WriteString(w, "<html><body><p>"+protectOriginText+"</p></body></html>")
	}))
}

// protectDecisions returns outpost_guard_decisions_total for a rule and
// action, 0 when absent.
func protectDecisions(t *testing.T, e *edge, rule, action string) float64 {
	t.Helper()
	n := metric(t, e, fmt.Sprintf(`outpost_guard_decisions_total{action=%q,rule=%q}`, action, rule))
	if n < 0 {
		n = metric(t, e, fmt.Sprintf(`outpost_guard_decisions_total{rule=%q,action=%q}`, rule, action))
	}
	return max(n, 0)
}

// protectAccessLog stops the node (flushing its access log) and returns
// the log's records.
func protectAccessLog(t *testing.T, e *edge, file string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	e.Shutdown(ctx)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("access log line not JSON: %v: %s", err, line)
		}
		out = append(out, rec)
	}
	return out
}

func TestProtectionDeniesByCIDRAndUserAgent(t *testing.T) {
	logFile := filepath.Join(t.TempDir(), "access.log")
	e := startEdge(t, oneRoute+`
debug: {trace_header: X-Trace}
log: {access: "{{LOG}}"}
protection:
  rules:
    - {name: office, ips: [192.0.2.0/24], action: allow}
    - {name: bad-agents, user_agents: [EvilBot, ""], action: deny}
    - {name: no-private, ips: [127.0.0.1/32], path_prefixes: [/private/], action: deny}
    - {name: other-net, ips: [198.51.100.0/24], action: deny}
    - {name: by-expr, expr: 'method == "GET" && headers["x-probe"] == "1" && ip_in(ip, "127.0.0.0/8")', action: deny}
`, "{{ORIGIN}}", protectOrigin(t), "{{LOG}}", logFile)
	for _, tc := range []struct {
		name, path, ua, probe string
		status                int
	}{
		{"an ordinary request passes", "/page", "Mozilla/5.0", "", 200},
		{"a listed User-Agent is denied, whatever its case", "/page", "Mozilla/5.0 (compatible; evilbot/2.1)", "", 403},
		{"a request without User-Agent is denied", "/page", "", "", 403},
		{"the client's CIDR is denied on the private path", "/private/x", "Mozilla/5.0", "", 403},
		{"the client's CIDR elsewhere passes", "/public/x", "Mozilla/5.0", "", 200},
		{"an expression over method, headers and ip denies", "/page", "Mozilla/5.0", "1", 403},
		{"the expression's other cases pass", "/page", "Mozilla/5.0", "2", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.URL+tc.path, nil)
			req.Header.Set("User-Agent", tc.ua) // "" makes Go send none
			req.Header.Set("X-Trace", "1")
			if tc.probe != "" {
				req.Header.Set("X-Probe", tc.probe)
			}
			resp, err := testClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d (%q)", resp.StatusCode, tc.status, body)
			}
			if tc.status == 403 && string(body) != "forbidden\n" {
				t.Errorf("denial body %q", body)
			}
			if tc.status == 200 && !strings.Contains(resp.Header.Get("X-Outpost-Trace"), "guard=") {
				t.Errorf("trace %q records no guard decision", resp.Header.Get("X-Outpost-Trace"))
			}
		})
	}
	if n := protectDecisions(t, e, "bad-agents", "deny"); n != 2 {
		t.Errorf("bad-agents denials counted %v, want 2", n)
	}
	if n := protectDecisions(t, e, "no-private", "deny"); n != 1 {
		t.Errorf("no-private denials counted %v, want 1", n)
	}
	if n := protectDecisions(t, e, "by-expr", "deny"); n != 1 {
		t.Errorf("by-expr denials counted %v, want 1", n)
	}
	if n := protectDecisions(t, e, "(none)", "none"); n != 3 {
		t.Errorf("requests no rule decided counted %v, want 3", n)
	}
	recs := protectAccessLog(t, e, logFile)
	rules := map[string]int{}
	for _, r := range recs {
		if r["status"] == 403.0 {
			rule, _ := r["rule"].(string)
			rules[rule]++
		}
	}
	if rules["bad-agents"] != 2 || rules["no-private"] != 1 || rules["by-expr"] != 1 || len(rules) != 3 {
		t.Errorf("access log rules of denials: %v", rules)
	}
}

func TestProtectionTarpitHoldsThenDenies(t *testing.T) {
	const delay = 300 * time.Millisecond
	e := startEdge(t, oneRoute+`
protection:
  rules:
    - {name: slow, user_agents: [slowbot], action: tarpit, delay: 300ms}
`, "{{ORIGIN}}", protectOrigin(t))
	start := time.Now()
	resp, body := get(t, e.URL+"/x", "User-Agent", "slowbot")
	if took := time.Since(start); took < delay {
		t.Errorf("tarpit answered after %v, before its delay of %v", took, delay)
	}
	if resp.StatusCode != 403 || body != "forbidden\n" {
		t.Errorf("tarpit answer %d %q, want 403", resp.StatusCode, body)
	}
	if resp, _ := get(t, e.URL+"/x", "User-Agent", "fine"); resp.StatusCode != 200 {
		t.Errorf("other client: %d", resp.StatusCode)
	}
	if n := protectDecisions(t, e, "slow", "tarpit"); n != 1 {
		t.Errorf("tarpits counted %v, want 1", n)
	}
}

// The tarpit cap: once maxTarpits (1024) requests are held, further ones
// are denied at once, and ordinary clients are still served.
func TestProtectionTarpitsAreCapped(t *testing.T) {
	if testing.Short() {
		t.Skip("opens over a thousand connections")
	}
	const held = 1024
	e := startEdge(t, oneRoute+`
protection:
  rules:
    - {name: slow, user_agents: [slowbot], action: tarpit, delay: 1m}
`, "{{ORIGIN}}", protectOrigin(t))
	addr := strings.TrimPrefix(e.URL, "http://")
	req := "GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: slowbot\r\n\r\n"
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range held {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
	}
	protectPoll(t, 10*time.Second, func() bool { return protectDecisions(t, e, "slow", "tarpit") == held })
	start := time.Now()
	resp, _ := get(t, e.URL+"/x", "User-Agent", "slowbot")
	if resp.StatusCode != 403 || time.Since(start) > 30*time.Second {
		t.Errorf("over the cap: %d after %v, want an immediate 403", resp.StatusCode, time.Since(start))
	}
	if n := protectDecisions(t, e, "slow", "deny"); n != 1 {
		t.Errorf("denials over the cap counted %v, want 1", n)
	}
	if resp, _ := get(t, e.URL+"/x", "User-Agent", "fine"); resp.StatusCode != 200 {
		t.Errorf("ordinary client while tarpits are full: %d", resp.StatusCode)
	}
}

// protectPoll waits until cond holds, failing the test after limit.
func protectPoll(t *testing.T, limit time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %v", limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestProtectionRateLimitRule(t *testing.T) {
	e := startEdge(t, oneRoute+`
protection:
  limits:
    - {name: api, key: client_ip, rate: 3, per: 1m, burst: 3}
  rules:
    - {name: throttle, path_prefixes: [/api/], action: rate_limit, limit: api}
    - {name: later, user_agents: [laterbot], action: deny}
`, "{{ORIGIN}}", protectOrigin(t))
	// Within the limit, the rules after a rate_limit rule still apply.
	if resp, _ := get(t, e.URL+"/api/a", "User-Agent", "laterbot"); resp.StatusCode != 403 {
		t.Fatalf("a request within the limit skipped the later rules: %d", resp.StatusCode)
	}
	for i := range 2 {
		if resp, _ := get(t, e.URL+"/api/a"); resp.StatusCode != 200 {
			t.Fatalf("request %d within the limit: %d", i, resp.StatusCode)
		}
	}
	resp, body := get(t, e.URL+"/api/a")
	if resp.StatusCode != 429 || !strings.Contains(body, "too many") {
		t.Fatalf("over the limit: %d %q", resp.StatusCode, body)
	}
	if resp.Header.Get("Retry-After") == "" || !strings.Contains(resp.Header.Get("RateLimit-Policy"), "q=3") ||
		!strings.Contains(resp.Header.Get("RateLimit"), `"api"`) {
		t.Errorf("fields: Retry-After %q RateLimit-Policy %q RateLimit %q", resp.Header.Get("Retry-After"),
			resp.Header.Get("RateLimit-Policy"), resp.Header.Get("RateLimit"))
	}
	if resp, _ := get(t, e.URL+"/other"); resp.StatusCode != 200 {
		t.Errorf("a path the rule does not cover: %d", resp.StatusCode)
	}
	if n := protectDecisions(t, e, "throttle", "rate_limited"); n != 1 {
		t.Errorf("limited counted %v, want 1", n)
	}
	if n := protectDecisions(t, e, "throttle", "within_limit"); n != 3 {
		t.Errorf("within counted %v, want 3", n)
	}
}

func TestProtectionRateConditionDecidesAboveItsCount(t *testing.T) {
	e := startEdge(t, oneRoute+`
protection:
  rules:
    - {name: search-flood, path_prefixes: [/search], rate_over: {count: 3, interval: 1m}, action: deny}
`, "{{ORIGIN}}", protectOrigin(t))
	for i := range 3 {
		if resp, _ := get(t, e.URL+"/search?q="+strconv.Itoa(i)); resp.StatusCode != 200 {
			t.Fatalf("search %d, within the count: %d", i, resp.StatusCode)
		}
	}
	if resp, _ := get(t, e.URL+"/search?q=x"); resp.StatusCode != 403 {
		t.Errorf("search over the count: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, e.URL+"/elsewhere"); resp.StatusCode != 200 {
		t.Errorf("a path the condition does not count: %d", resp.StatusCode)
	}
}

func TestProtectionInFlightPerClient(t *testing.T) {
	release := make(chan struct{})
	arrived := make(chan struct{}, 2)
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/slow":
			arrived <- struct{}{}
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		case "/broken":
			panic(http.ErrAbortHandler) // the origin drops the connection
		}
		io.WriteString(w, "ok")
	}))
	e := startEdge(t, oneRoute+`
protection:
  in_flight_per_client: 2
`, "{{ORIGIN}}", origin)
	done := make(chan int, 2)
	for i := range 2 {
		go func() {
			resp, err := testClient.Get(e.URL + "/slow?" + strconv.Itoa(i)) // distinct, so never collapsed
			if err != nil {
				done <- 0
				return
			}
			resp.Body.Close()
			done <- resp.StatusCode
		}()
	}
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the origin did not see both held requests")
		}
	}
	resp, body := get(t, e.URL+"/fast")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("third request in flight: %d %q, want 429 with Retry-After", resp.StatusCode, body)
	}
	close(release)
	for range 2 {
		if st := <-done; st != 200 {
			t.Errorf("held request: %d", st)
		}
	}
	// Failed requests give their place back too.
	for range 3 {
		if resp, _ := get(t, e.URL+"/broken"); resp.StatusCode != 502 {
			t.Errorf("broken origin: %d, want 502", resp.StatusCode)
		}
	}
	if resp, _ := get(t, e.URL+"/fast"); resp.StatusCode != 200 {
		t.Errorf("after the others ended: %d, want 200", resp.StatusCode)
	}
	if n := protectDecisions(t, e, "in_flight_per_client", "rate_limited"); n != 1 {
		t.Errorf("in-flight refusals counted %v, want 1", n)
	}
}

// protectChallengeConfig challenges every request, with a key from a file
// so that the test can make passes of its own.
const protectChallengeConfig = `
protection:
  rules:
    - {name: humans, action: challenge}
  challenge:
    secret_file: "{{SECRET}}"
    difficulty: {{BITS}}
`

const protectSecret = "a test secret of some length"

func protectChallengeEdge(t *testing.T, bits int) *edge {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(protectSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return startEdge(t, oneRoute+protectChallengeConfig, "{{ORIGIN}}", protectOrigin(t),
		"{{SECRET}}", secret, "{{BITS}}", strconv.Itoa(bits))
}

// protectNoRedirects is a client that shows redirects instead of
// following them.
var protectNoRedirects = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

func protectDo(t *testing.T, method, url, ua, cookie, form string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(form))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("User-Agent", ua)
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	if form != "" {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := protectNoRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var (
	protectTokenRE = regexp.MustCompile(`name="c" value="([^"]+)"`)
	protectBitsRE  = regexp.MustCompile(`data-bits="(\d+)"`)
	protectFormRE  = regexp.MustCompile(`action="([^"]+)"`)
	protectBackRE  = regexp.MustCompile(`name="r" value="([^"]*)"`)
)

// protectSolve does what the page's script does: finds the nonce and
// returns the form to post and where to post it.
func protectSolve(t *testing.T, page string) (action, form string) {
	t.Helper()
	tok, b, act, back := protectTokenRE.FindStringSubmatch(page), protectBitsRE.FindStringSubmatch(page),
		protectFormRE.FindStringSubmatch(page), protectBackRE.FindStringSubmatch(page)
	if tok == nil || b == nil || act == nil || back == nil {
		t.Fatalf("not a challenge page:\n%s", page)
	}
	token := html.UnescapeString(tok[1])
	need, _ := strconv.Atoi(b[1])
	for n := 0; n < 1<<26; n++ {
		sum := sha256.Sum256([]byte(token + strconv.Itoa(n)))
		if bits.LeadingZeros32(binary.BigEndian.Uint32(sum[:4])) >= need {
			return html.UnescapeString(act[1]), url.Values{"c": {token}, "n": {strconv.Itoa(n)}, "r": {html.UnescapeString(back[1])}}.Encode()
		}
	}
	t.Fatal("no nonce found")
	return "", ""
}

// wrongNonce replaces the nonce of a solved form with one that does not
// solve the challenge (a nonce picked blindly solves it once in 2^bits).
func wrongNonce(form string, need int) string {
	v, _ := url.ParseQuery(form)
	for i := 0; ; i++ {
		n := "x" + strconv.Itoa(i)
		sum := sha256.Sum256([]byte(v.Get("c") + n))
		if bits.LeadingZeros32(binary.BigEndian.Uint32(sum[:4])) < need {
			v.Set("n", n)
			return v.Encode()
		}
	}
}

func TestProtectionChallengeStopsClientsWithoutAPass(t *testing.T) {
	e := protectChallengeEdge(t, 8)
	const ua = "Go-http-client/1.1"
	key := &guard.Challenge{Secret: []byte(protectSecret), Difficulty: 8}
	if err := key.Provision(); err != nil {
		t.Fatal(err)
	}
	client := netip.MustParseAddr("127.0.0.1")
	now := time.Now()
	pass := func(ip netip.Addr, ua string, at time.Time) string {
		return string(key.AppendPass(nil, ip, []byte(ua), at))
	}
	for _, tc := range []struct{ name, cookie string }{
		{"no cookie", ""},
		{"garbage cookie", guard.DefaultCookieName + "=garbage"},
		{"forged signature", guard.DefaultCookieName + "=" + protectFlip(strings.TrimPrefix(pass(client, ua, now), guard.DefaultCookieName+"="))},
		{"expired pass", pass(client, ua, now.Add(-2*guard.DefaultPassTTL))},
		{"pass of another address", pass(netip.MustParseAddr("192.0.2.7"), ua, now)},
		{"pass of another User-Agent", pass(client, "curl/8.0", now)},
		{"pass signed with another key", protectOtherKeyPass(t, client, ua, now)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for range 2 { // and stays challenged
				resp, body := protectDo(t, "GET", e.URL+"/page", ua, tc.cookie, "")
				if resp.StatusCode != 403 || !strings.Contains(body, "Checking your browser") || strings.Contains(body, protectOriginText) {
					t.Fatalf("status %d body %.80q, want the challenge page", resp.StatusCode, body)
				}
				if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Content-Security-Policy") == "" {
					t.Fatalf("challenge page fields: %v", resp.Header)
				}
			}
		})
	}
	if resp, body := protectDo(t, "GET", e.URL+"/page", ua, pass(client, ua, now), ""); resp.StatusCode != 200 || !strings.Contains(body, protectOriginText) {
		t.Errorf("a valid pass: %d %.80q", resp.StatusCode, body)
	}
	// Answers that are wrong are refused, and GET is not an answer.
	_, page := protectDo(t, "GET", e.URL+"/page", ua, "", "")
	action, form := protectSolve(t, page)
	for _, bad := range []struct{ name, method, ua, form string }{
		{"wrong nonce", "POST", ua, wrongNonce(form, 8)},
		{"other User-Agent", "POST", "curl/8.0", form},
		{"empty", "POST", ua, ""},
		{"GET", "GET", ua, ""},
	} {
		resp, _ := protectDo(t, bad.method, e.URL+action, bad.ua, "", bad.form)
		if resp.StatusCode != 403 && resp.StatusCode != 405 || resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s answer: %d, Set-Cookie %q", bad.name, resp.StatusCode, resp.Header.Get("Set-Cookie"))
		}
	}
	if n := protectDecisions(t, e, "humans", "challenge"); n < 15 {
		t.Errorf("challenges counted %v", n)
	}
}

// protectFlip changes one character of a pass value.
func protectFlip(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func protectOtherKeyPass(t *testing.T, ip netip.Addr, ua string, now time.Time) string {
	other := &guard.Challenge{Secret: []byte("another secret, as long as needed")}
	if err := other.Provision(); err != nil {
		t.Fatal(err)
	}
	return string(other.AppendPass(nil, ip, []byte(ua), now))
}

func TestProtectionChallengeSolvedByAGoClientLetsItThrough(t *testing.T) {
	e := protectChallengeEdge(t, 12)
	const ua = "solver/1.0"
	resp, page := protectDo(t, "GET", e.URL+"/deep/page?q=1", ua, "", "")
	if resp.StatusCode != 403 {
		t.Fatalf("first visit: %d", resp.StatusCode)
	}
	action, form := protectSolve(t, page)
	resp, _ = protectDo(t, "POST", e.URL+action, ua, "", form)
	cookie := resp.Header.Get("Set-Cookie")
	if resp.StatusCode != 303 || resp.Header.Get("Location") != "/deep/page?q=1" || !strings.HasPrefix(cookie, guard.DefaultCookieName+"=") {
		t.Fatalf("answer: %d Location %q Set-Cookie %q", resp.StatusCode, resp.Header.Get("Location"), cookie)
	}
	pass, _, _ := strings.Cut(cookie, ";")
	for range 3 {
		resp, body := protectDo(t, "GET", e.URL+"/deep/page?q=1", ua, pass, "")
		if resp.StatusCode != 200 || !strings.Contains(body, protectOriginText) {
			t.Fatalf("with the pass: %d %.80q", resp.StatusCode, body)
		}
	}
	if n := protectDecisions(t, e, "challenge_verify", "passed"); n != 1 {
		t.Errorf("verified answers counted %v, want 1", n)
	}
	if n := protectDecisions(t, e, "humans", "passed"); n != 3 {
		t.Errorf("requests with a pass counted %v, want 3", n)
	}
}

// chromiumPath is where Debian's chromium package puts the browser; .ci
// installs it with `apt-get install -y chromium`.
const chromiumPath = "/usr/bin/chromium"

func TestProtectionChallengeSolvedByHeadlessChromium(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatal("headless Chromium not installed (test.sh installs it: apt-get install -y chromium)")
	}
	e := protectChallengeEdge(t, guard.DefaultDifficulty)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	start := time.Now()
	out, err := exec.CommandContext(ctx, chromiumPath, "--headless", "--no-sandbox", "--disable-gpu",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-dev-shm-usage", "--user-data-dir="+t.TempDir(), "--virtual-time-budget=10000",
		"--dump-dom", e.URL+"/article?id=7").Output()
	took := time.Since(start)
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), protectOriginText) {
		t.Fatalf("the browser did not reach the origin's page after %v; final DOM:\n%.2000s", took, out)
	}
	t.Logf("headless Chromium solved the challenge (difficulty %d) and loaded the page in %v", guard.DefaultDifficulty, took)
	if n := protectDecisions(t, e, "challenge_verify", "passed"); n != 1 {
		t.Errorf("verified answers counted %v, want 1", n)
	}
}

func TestProtectionFingerprintHeadersReachTheOrigin(t *testing.T) {
	dir := t.TempDir()
	cert, key, pool := writeCert(t, dir, "a", "a.example")
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "ja4=%s ja4h=%s", r.Header.Values("X-JA4"), r.Header.Values("X-JA4H"))
	}))
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
  - addr: 127.0.0.1:0
    tls:
      certs: [{cert: "{{CERT}}", key: "{{KEY}}"}]
upstreams:
  origin:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: all
    upstream: origin
    cache: {enabled: false}
protection:
  fingerprint_headers: true
  rules:
    - {name: no-go-tls, ja4: ["t13d*"], path_prefixes: [/tls-only/], action: deny}
`, "{{CERT}}", cert, "{{KEY}}", key, "{{ORIGIN}}", origin)

	_, body := get(t, e.URL+"/x", "X-JA4", "forged", "X-JA4H", "forged")
	if !regexp.MustCompile(`^ja4=\[\] ja4h=\[ge11nn\d\d0000_[0-9a-f]{12}_0{12}_0{12}\]$`).MatchString(body) {
		t.Errorf("cleartext: the origin saw %q, want no X-JA4 and one computed X-JA4H", body)
	}
	if resp, _ := get(t, e.URL+"/tls-only/x"); resp.StatusCode != 200 {
		t.Errorf("a JA4 rule matched a cleartext request: %d", resp.StatusCode)
	}

	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{ServerName: "a.example", RootCAs: pool}, ForceAttemptHTTP2: true}}
	tlsURL := "https://" + e.Addrs()[1].String()
	resp, err := tlsClient.Get(tlsURL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`^ja4=\[t13d\w+\] ja4h=\[ge20nn`).Match(b) {
		t.Errorf("TLS: the origin saw %q, want the client's JA4 and JA4H", b)
	}
	resp, err = tlsClient.Get(tlsURL + "/tls-only/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("JA4 rule over TLS: %d, want 403", resp.StatusCode)
	}
}

// protectBenchRules is a typical rule set: an allow list, User-Agent deny
// lists, header anomalies, an expression, a rate condition, a challenge on
// one path, a generous rate limit for everyone and an in-flight limit. The
// benchmark's requests pass every rule.
const protectBenchRules = `
protection:
  in_flight_per_client: 64
  limits:
    - {name: everyone, key: client_ip, rate: 1000000, per: 1s, burst: 1000000}
  rules:
    - {name: office, ips: [192.0.2.0/24, "2001:db8::/48"], action: allow}
    - {name: blocked-nets, ips: [198.51.100.0/24, 203.0.113.0/24, "2001:db8:dead::/48"], action: deny}
    - {name: scrapers, user_agents: [curl, wget, python-requests, scrapy, ""], action: deny}
    - {name: bots, user_agent_regex: '(?i)(bot|spider|crawl)', action: tarpit, delay: 5s}
    - {name: fake-browsers, anomalies: [browser_no_accept, browser_no_language, browser_http10], action: deny}
    - {name: logins, expr: 'method == "POST" && path.startsWith("/login")', action: challenge}
    - {name: admin, path_prefixes: [/admin/], action: challenge}
    - {name: floods, rate_over: {count: 10000000, interval: 1s}, action: deny}
    - {name: everyone, action: rate_limit, limit: everyone}
`

// BenchmarkProtectHit1K is BenchmarkHit1K with protection off, with
// protectBenchRules on, and with those rules but the expression: the cost
// of the protection layer on a cache hit.
func BenchmarkProtectHit1K(b *testing.B) {
	noExpr := regexp.MustCompile(`(?m)^.*expr:.*\n`).ReplaceAllString(protectBenchRules, "")
	for _, bc := range []struct{ name, cfg string }{{"off", ""}, {"on", protectBenchRules}, {"on_without_expr", noExpr}} {
		b.Run(bc.name, func(b *testing.B) {
			e := startEdge(&testing.T{}, oneRoute+bc.cfg, "{{ORIGIN}}", benchOrigin(b))
			defer e.Shutdown(b.Context())
			c := newRawClient(b, strings.TrimPrefix(e.URL, "http://"), "/obj")
			defer c.conn.Close()
			c.do(b) // fill the cache
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if st := c.do(b); st != 200 {
					b.Fatalf("status %d", st)
				}
			}
		})
	}
}

// A reload keeps what clients have earned or used up: passes signed with
// the process's own key, and counts against rate limits.
func TestProtectionStateSurvivesAReload(t *testing.T) {
	e := startEdge(t, oneRoute+`
protection:
  limits:
    - {name: api, key: client_ip, rate: 2, per: 1h}
  rules:
    - {name: throttle, path_prefixes: [/api/], action: rate_limit, limit: api}
    - {name: humans, path_prefixes: [/site/], action: challenge}
  challenge: {difficulty: 8}
`, "{{ORIGIN}}", protectOrigin(t))
	const ua = "solver/1.0"
	_, page := protectDo(t, "GET", e.URL+"/site/", ua, "", "")
	action, form := protectSolve(t, page)
	resp, _ := protectDo(t, "POST", e.URL+action, ua, "", form)
	pass, _, _ := strings.Cut(resp.Header.Get("Set-Cookie"), ";")
	for range 2 {
		if resp, _ := get(t, e.URL+"/api/x"); resp.StatusCode != 200 {
			t.Fatalf("within the limit: %d", resp.StatusCode)
		}
	}

	cfg, err := os.ReadFile(e.file)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(cfg), "  rules:\n", "  rules:\n    - {name: new-rule, user_agents: [newbot], action: deny}\n", 1)
	if err := os.WriteFile(e.file, []byte(changed), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.ReloadFile(e.file); err != nil {
		t.Fatal(err)
	}
	// New connections: an idle keep-alive connection serves its next
	// request with the config it had when it went idle.
	testClient.CloseIdleConnections()
	protectNoRedirects.CloseIdleConnections()
	if resp, _ := get(t, e.URL+"/x", "User-Agent", "newbot"); resp.StatusCode != 403 {
		t.Fatalf("the reloaded rules do not apply: %d", resp.StatusCode)
	}
	if resp, body := protectDo(t, "GET", e.URL+"/site/", ua, pass, ""); resp.StatusCode != 200 || !strings.Contains(body, protectOriginText) {
		t.Errorf("a pass from before the reload: %d", resp.StatusCode)
	}
	if resp, _ := get(t, e.URL+"/api/x"); resp.StatusCode != 429 {
		t.Errorf("the limit's count from before the reload was lost: %d, want 429", resp.StatusCode)
	}
}

// countryDB writes a country database mapping each CIDR of countries to
// its ISO code.
func countryDB(t *testing.T, countries map[string]string) string {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		t.Fatal(err)
	}
	for cidr, code := range countries {
		_, n, err := net.ParseCIDR(cidr)
		if err != nil {
			t.Fatal(err)
		}
		if err := tree.Insert(n, mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(code)}}); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "country.mmdb")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := tree.WriteTo(f); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestGeoIPCountryOfKnownAndUnknownAddresses lives here rather than in
// package geoip because writing a database takes mmdbwriter, which only
// this test module requires.
func TestGeoIPCountryOfKnownAndUnknownAddresses(t *testing.T) {
	db, err := geoip.Open(countryDB(t, map[string]string{"192.0.2.0/24": "DE", "2001:db8::/32": "FR"}))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for ip, want := range map[string]string{
		"192.0.2.7": "DE", "::ffff:192.0.2.8": "DE", "2001:db8::1": "FR", "198.51.100.1": "",
	} {
		for range 2 { // the second answer comes from the cache
			if got := db.Country(netip.MustParseAddr(ip)); got != want {
				t.Errorf("%s: %q, want %q", ip, got, want)
			}
		}
	}
}

func TestProtectionRuleByCountry(t *testing.T) {
	e := startEdge(t, oneRoute+`
protection:
  geoip: {database: "{{DB}}"}
  rules:
    - {name: embargo, expr: 'country == "ZZ" && path.startsWith("/shop")', action: deny}
    - {name: not-here, expr: 'country == "FR"', action: deny}
`, "{{ORIGIN}}", protectOrigin(t), "{{DB}}", countryDB(t, map[string]string{"127.0.0.0/8": "ZZ"}))
	if resp, _ := get(t, e.URL+"/shop/cart"); resp.StatusCode != 403 {
		t.Errorf("a client from the denied country: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, e.URL+"/news"); resp.StatusCode != 200 {
		t.Errorf("the same client elsewhere: %d, want 200", resp.StatusCode)
	}
	if n := protectDecisions(t, e, "embargo", "deny"); n != 1 {
		t.Errorf("embargo denials counted %v, want 1", n)
	}
}

func TestReloadSwitchesTheGeoIPDatabase(t *testing.T) {
	here, there := countryDB(t, map[string]string{"127.0.0.0/8": "ZZ"}), countryDB(t, map[string]string{"127.0.0.0/8": "FR"})
	e := startEdge(t, oneRoute+`
protection:
  geoip: {database: "{{DB}}"}
  rules:
    - {name: not-here, expr: 'country == "FR"', action: deny}
`, "{{ORIGIN}}", protectOrigin(t), "{{DB}}", here)
	if resp, _ := get(t, e.URL+"/x"); resp.StatusCode != 200 {
		t.Fatalf("before the reload: %d, want 200", resp.StatusCode)
	}
	cfg, _ := os.ReadFile(e.file)
	if err := os.WriteFile(e.file, []byte(strings.Replace(string(cfg), here, there, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e.ReloadFile(e.file); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, e.URL+"/x"); resp.StatusCode != 403 {
		t.Fatalf("after a reload to the FR database: %d, want 403", resp.StatusCode)
	}
	// A database replaced in place is read again by a reload.
	b, _ := os.ReadFile(here)
	if err := os.WriteFile(there+".new", b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(there+".new", there); err != nil {
		t.Fatal(err)
	}
	if err := e.ReloadFile(e.file); err != nil {
		t.Fatal(err)
	}
	if resp, _ := get(t, e.URL+"/x"); resp.StatusCode != 200 {
		t.Fatalf("after a reload of the replaced database: %d, want 200", resp.StatusCode)
	}
}
