package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromium returns the browser the page tests drive: Debian's chromium
// (chromiumPath). A missing browser fails the test: test.sh installs it,
// and a skip would hide that the pages went untested.
func chromium(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		t.Fatal("headless Chromium not installed (test.sh installs it: apt-get install -y chromium)")
	}
	return chromiumPath
}

// browser starts a headless Chromium for the test.
func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1500, 1000))
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelC := chromedp.NewContext(actx)
	// The browser lives as long as the context of the first Do; the
	// test's actions are bounded by a timeout derived from it.
	if err := chromedp.Do(bctx); err != nil {
		cancelC()
		cancelA()
		t.Fatalf("starting %s: %v", chromium(t), err)
	}
	ctx, cancelT := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() { cancelT(); cancelC(); cancelA() })
	return ctx
}

// artifacts is where the page tests save screenshots: $OUTPOST_ARTIFACTS,
// or a new temporary directory that outlives the test.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("OUTPOST_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "outpost-screenshots-"); err != nil {
			t.Fatal(err)
		}
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // quality 100: PNG
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(artifacts(t), name)
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", file)
}

const pagesConfig = `
routes:
  - name: hello
    respond: {status: 200, body: "hello\n", headers: {Cache-Control: "max-age=60"}}
    cache: {enabled: true}
`

// TestBrowserFiddle drives the Fiddle page on the admin listener: load the
// package-index example, run a request twice (the second a hit, with no
// origin fetch), advance the clock past the TTL (a refresh), and type an
// invalid key (its error shown at its line).
func TestBrowserFiddle(t *testing.T) {
	e := startEdge(t, pagesConfig)
	ctx := browser(t)
	const step1 = `.step[data-step="1"]`
	url := "http://index.test/pypi/requests/json" // the api route: default_ttl 60s
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.Admin+"/fiddle/#token="+adminToken),
		chromedp.WaitReady(`body[data-loads="1"]`), // the page starts with the example
		chromedp.Click(`#load-example`),
		chromedp.WaitReady(`body[data-loads="2"]`),
		chromedp.WaitVisible(`#origins [data-upstream="app"]`),
		chromedp.SetValue(`#url`, url),
		chromedp.SetValue(`#asserts`, "response.status == 200"),
		chromedp.Click(`#run`),
		chromedp.WaitVisible(`.step[data-step="0"] .fetch-count[data-count="1"]`),
		chromedp.Click(`#again`),
		chromedp.WaitVisible(step1+` tr.event[data-phase="cache"][data-decision="hit"]`),
		chromedp.WaitVisible(step1+` .fetch-count[data-count="0"]`),
		chromedp.WaitVisible(step1+` .assert.ok`),
		chromedp.Click(`#plus1m`),
		chromedp.WaitVisible(`.step[data-step="2"] .fetch-count[data-count="1"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	decisions, _ := chromedp.Run(ctx, chromedp.Text(`.step[data-step="2"] table.events`))
	if strings.Contains(decisions, "hit") && !strings.Contains(decisions, "expired") && !strings.Contains(decisions, "miss") {
		t.Errorf("after +1 min: %s", decisions)
	}
	screenshot(t, ctx, "fiddle.png")

	// An invalid key: the error comes back with its line, marked in the
	// editor's gutter, in the words of outpost validate.
	config, err := chromedp.Run(ctx, chromedp.Value(`#config`))
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(config, "default_ttl: 60s", "default_tll: 60s", 1)
	line := strings.Count(bad[:strings.Index(bad, "default_tll")], "\n") + 1
	err = chromedp.Do(ctx,
		chromedp.SetValue(`#config`, bad),
		chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Evaluate[bool](`document.getElementById("config").dispatchEvent(new Event("input"))`)(ctx, t)
			return err
		}),
		chromedp.WaitVisible(`.config-error[data-line="`+strconv.Itoa(line)+`"]`),
		chromedp.WaitVisible(`#gutter .err[data-line="`+strconv.Itoa(line)+`"]`),
	)
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(`.config-error[data-line="`+strconv.Itoa(line)+`"]`))
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("fiddle.yaml:%d: routes[2].cache.default_tll: unknown key", line); !strings.HasPrefix(text, want) {
		t.Errorf("error %q, want %q", text, want)
	}
	// A click on the error scrolls the editor to its line.
	if err := chromedp.Do(ctx, chromedp.Click(`.config-error[data-line="`+strconv.Itoa(line)+`"]`)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "fiddle-error.png")
}

// TestBrowserStatusPage opens the status page and sees the request
// counter move while a bounded load loop runs.
func TestBrowserStatusPage(t *testing.T) {
	e := startEdge(t, pagesConfig)
	ctx := browser(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.Admin+"/#token="+adminToken),
		chromedp.WaitVisible(`#rps polyline`),
	)
	if err != nil {
		t.Fatal(err)
	}
	before, err := chromedp.Run(ctx, chromedp.Text(`#total-requests`))
	if err != nil {
		t.Fatal(err)
	}
	var sent atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // at most 20000 requests or 10 seconds
		defer close(done)
		deadline := time.Now().Add(10 * time.Second)
		for i := 0; i < 20000 && time.Now().Before(deadline); i++ {
			select {
			case <-stop:
				return
			default:
			}
			if resp, err := testClient.Get(e.URL + "/"); err == nil {
				resp.Body.Close()
				sent.Add(1)
			}
		}
	}()
	defer func() { close(stop); <-done }()
	n0, _ := strconv.Atoi(before)
	var moved bool
	for deadline := time.Now().Add(8 * time.Second); time.Now().Before(deadline) && !moved; time.Sleep(300 * time.Millisecond) {
		now, err := chromedp.Run(ctx, chromedp.Text(`#total-requests`))
		if err != nil {
			t.Fatal(err)
		}
		n, _ := strconv.Atoi(now)
		moved = n > n0 && n > 0
	}
	if !moved {
		t.Fatalf("the request counter did not move (%d sent)", sent.Load())
	}
	time.Sleep(2 * time.Second) // a few points on the charts
	screenshot(t, ctx, "status.png")
	rps, _ := chromedp.Run(ctx, chromedp.Text(`#now-rps`))
	t.Logf("status page: %s requests/s, %d sent", rps, sent.Load())
}
