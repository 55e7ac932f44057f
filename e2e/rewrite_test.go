package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
)

// registryOrigin is a package registry whose metadata names tarballs on
// its own host (as npm's does), gzipped when the request accepts it.
func registryOrigin(t *testing.T, versions int) (addr string, tarball func(v int) []byte) {
	tarball = func(v int) []byte { return bytes.Repeat([]byte(fmt.Sprintf("tgz-%d;", v)), 50) }
	var self string
	self = serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if name, ok := strings.CutPrefix(r.URL.Path, "/left-pad/-/left-pad-1."); ok {
			var v int
			fmt.Sscanf(name, "%d.0.tgz", &v)
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write(tarball(v))
			return
		}
		if r.URL.Path != "/left-pad" {
			http.NotFound(w, r)
			return
		}
		vs := map[string]any{}
		for v := 0; v < versions; v++ {
			vs[fmt.Sprintf("1.%d.0", v)] = map[string]any{"dist": map[string]string{
				"tarball": fmt.Sprintf("http://%s/left-pad/-/left-pad-1.%d.0.tgz", self, v)}}
		}
		doc, _ := json.Marshal(map[string]any{"name": "left-pad", "homepage": "http://" + self + "/left-pad", "versions": vs})
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=60")
		w.Header().Set("ETag", `"meta-1"`)
		w.Header().Set("Vary", "Accept-Encoding")
		if strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
			w.Header().Set("Content-Encoding", "gzip")
			zw := gzip.NewWriter(w)
			zw.Write(doc)
			zw.Close()
			return
		}
		w.Write(doc)
	}))
	return self, tarball
}

// TestRewrittenRegistryMetadataKeepsClientsOnTheEdge: the registry's JSON
// is rewritten (decoded from the origin's gzip, rewritten, coded again for
// the client, and stored so); a client that follows its URLs, and can
// reach only the edge, gets every tarball.
func TestRewrittenRegistryMetadataKeepsClientsOnTheEdge(t *testing.T) {
	const versions = 2000 // a few hundred KiB: many reads, matches across them
	origin, tarball := registryOrigin(t, versions)
	e := startEdge(t, `
upstreams:
  registry:
    servers: [{addr: "{{ORIGIN}}"}]
routes:
  - name: registry
    upstream: registry
    rewrite:
      replace:
        - {find: "http://{{ORIGIN}}/", with: "http://edge.test/"}
`, "{{ORIGIN}}", origin)
	edgeAddr := strings.TrimPrefix(e.URL, "http://")
	var mu sync.Mutex
	var elsewhere []string
	client := &http.Client{Transport: &http.Transport{DisableCompression: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr != "edge.test:80" {
				mu.Lock()
				elsewhere = append(elsewhere, addr)
				mu.Unlock()
				return nil, fmt.Errorf("this client reaches only the edge, not %s", addr)
			}
			return (&net.Dialer{}).DialContext(ctx, network, edgeAddr)
		}}}
	fetch := func(url, ae string) (*http.Response, []byte) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Accept-Encoding", ae)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for _, ae := range []string{"gzip", "gzip", "br", ""} { // the second gzip is a hit
		resp, body := fetch("http://edge.test/left-pad", ae)
		coding := map[string]string{"gzip": "gzip", "br": "br"}[ae]
		if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != coding {
			t.Fatalf("AE %q: %d, Content-Encoding %q", ae, resp.StatusCode, resp.Header.Get("Content-Encoding"))
		}
		var doc struct {
			Homepage string
			Versions map[string]struct{ Dist struct{ Tarball string } }
		}
		plain := decode(t, coding, body)
		if err := json.Unmarshal(plain, &doc); err != nil || len(doc.Versions) != versions {
			t.Fatalf("AE %q: metadata %d versions, %v", ae, len(doc.Versions), err)
		}
		if strings.Contains(string(plain), origin) || doc.Homepage != "http://edge.test/left-pad" {
			t.Fatalf("AE %q: the origin's host is still in the metadata", ae)
		}
		// RFC 9110 section 8.8.3: the rewritten bytes are not the origin's.
		if tag := resp.Header.Get("ETag"); !strings.HasPrefix(tag, `W/"meta-1`) {
			t.Fatalf("AE %q: ETag %s, want the origin's made weak", ae, tag)
		}
		if ae != "gzip" {
			continue
		}
		n := 0
		for v, ver := range doc.Versions {
			if n++; n > 20 {
				break
			}
			resp, got := fetch(ver.Dist.Tarball, "")
			var i int
			fmt.Sscanf(v, "1.%d.0", &i)
			if resp.StatusCode != 200 || !bytes.Equal(got, tarball(i)) {
				t.Fatalf("tarball %s: %d, %d bytes", ver.Dist.Tarball, resp.StatusCode, len(got))
			}
		}
	}
	if len(elsewhere) > 0 {
		t.Fatalf("the client was sent to %v", elsewhere)
	}
	// What the cache stored is the rewritten body: a hit serves it.
	resp, body := fetch("http://edge.test/left-pad", "gzip")
	if cs := resp.Header.Get("Cache-Status"); !strings.Contains(cs, "; hit") || !strings.Contains(string(decode(t, "gzip", body)), "http://edge.test/left-pad/-/") {
		t.Fatalf("hit: Cache-Status %q", cs)
	}
}
