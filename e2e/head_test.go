package e2e

import (
	"net/http"
	"testing"
)

// RFC 9110 section 9.3.2: a HEAD response carries the fields a GET would,
// Content-Length included, also when it passes through uncached (it was
// replaced by the 0 of a bodiless response's framing).
func TestRFC9110Section9_3_2HeadKeepsTheOriginsContentLength(t *testing.T) {
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "12345")
		w.Header().Set("Cache-Control", "no-store")
		if r.Method != "HEAD" {
			w.Write(make([]byte, 12345))
		}
	}))
	e := startEdge(t, oneRoute, "{{ORIGIN}}", origin)
	for i := 0; i < 2; i++ { // the second goes through hit-for-pass
		req, _ := http.NewRequest("HEAD", e.URL+"/big", nil)
		resp, err := testClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.ContentLength != 12345 {
			t.Errorf("HEAD %d: %d, Content-Length %d, want 12345", i, resp.StatusCode, resp.ContentLength)
		}
	}
}
