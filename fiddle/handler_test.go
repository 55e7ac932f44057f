package fiddle

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
)

func post(t *testing.T, srv *httptest.Server, path string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(srv.URL+path, "application/json", strings.NewReader(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			t.Fatal(err)
		}
	}
	return resp.StatusCode
}

// TestAPI goes through the HTTP API: run the example, save it, export it
// as a test file that LoadFile reads back.
func TestAPI(t *testing.T) {
	srv := httptest.NewServer(NewHandler(&Store{Dir: t.TempDir()}))
	defer srv.Close()
	ex, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	ex.Requests = append(ex.Requests, Step{URL: "http://index.test/simple/requests/",
		Assert: []string{`events.exists(e, e.phase == "cache" && e.decision == "hit")`, "origin_fetches.size() == 0"}})
	var out Response
	if st := post(t, srv, "/fiddle/api/run", ex, &out); st != 200 || len(out.Errors) > 0 || len(out.Results) != 2 {
		t.Fatalf("status %d: %+v", st, out)
	}
	for _, r := range out.Results {
		for _, a := range r.Assertions {
			if !a.OK {
				t.Errorf("%s: %+v", a.Expr, r.Events)
			}
		}
	}
	var v struct{ Errors []ConfigError }
	post(t, srv, "/fiddle/api/validate", map[string]string{"config": "routes:\n  - name: a\n    respond: {status: 200}\n    cache: {enabled: true, default_tll: 1s}\n"}, &v)
	if len(v.Errors) == 0 || v.Errors[len(v.Errors)-1].Line != 4 || !strings.Contains(v.Errors[len(v.Errors)-1].Key, "default_tll") {
		t.Errorf("validate: %+v", v.Errors)
	}
	var saved struct{ ID, URL string }
	if st := post(t, srv, "/fiddle/api/fiddles", ex, &saved); st != 200 || saved.URL != "/fiddle/f/"+saved.ID {
		t.Fatalf("save: %d %+v", st, saved)
	}
	resp, err := http.Get(srv.URL + "/fiddle/api/fiddles/" + saved.ID + "/test")
	if err != nil {
		t.Fatal(err)
	}
	yml, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	file := t.TempDir() + "/f.yaml"
	os.WriteFile(file, yml, 0o600)
	back, _, err := LoadFile(file)
	if err != nil || back.Config != ex.Config || len(back.Requests) != 2 {
		t.Fatalf("exported test file: %v\n%s", err, yml)
	}
	for _, p := range []string{"/fiddle/", "/fiddle/f/" + saved.ID} {
		resp, err := http.Get(srv.URL + p)
		if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			t.Errorf("%s: %v %v", p, err, resp)
		}
	}
	if st := post(t, srv, "/fiddle/api/run", map[string]any{"config": "", "requestz": []int{}}, nil); st != 400 {
		t.Errorf("unknown field: %d", st)
	}
}

// TestExampleIsThePackageIndex: the page's example runs the config that
// examples/package-index.yaml holds.
func TestExampleIsThePackageIndex(t *testing.T) {
	ex, err := Example()
	if err != nil {
		t.Fatal(err)
	}
	if want := packageIndex(t); ex.Config != want {
		t.Error("fiddle/example.yaml's config differs from examples/package-index.yaml")
	}
}

// TestRunFileFails: a false assertion fails the file and prints the
// step's decision trail.
func TestRunFileFails(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(dir+"/guarded.yaml", []byte(guarded), 0o600)
	os.WriteFile(dir+"/t.yaml", []byte(`config_file: guarded.yaml
origins:
  app: [{body: hi}]
requests:
  - url: http://a.test/
    assert: [response.status == 200]
  - url: http://a.test/
    headers: {User-Agent: curl}
    client_ip: 198.51.100.1
    assert: [response.status == 200]
`), 0o600)
	var out strings.Builder
	ok, err := RunFile(t.Context(), dir+"/t.yaml", &out)
	if err != nil || ok {
		t.Fatalf("ok %v, err %v", ok, err)
	}
	for _, want := range []string{"ok   " + dir + "/t.yaml: requests[0]", "FAIL " + dir + "/t.yaml: requests[1] GET http://a.test/ at +0s: 403",
		"assert response.status == 200: false", "protection deny: rule no-curl"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in\n%s", want, out.String())
		}
	}
	os.WriteFile(dir+"/bad.yaml", []byte("config: \"routes: 3\"\nrequests: []\n"), 0o600)
	out.Reset()
	if ok, _ := RunFile(t.Context(), dir+"/bad.yaml", &out); ok || !strings.Contains(out.String(), "bad.yaml:1: routes:") {
		t.Errorf("config error: %s", out.String())
	}
}
