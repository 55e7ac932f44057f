package e2e

import (
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// h2specPath finds the h2spec binary test.sh installs (go install puts it
// in $(go env GOPATH)/bin, which need not be on PATH).
func h2specPath(t *testing.T) string {
	if p, err := exec.LookPath("h2spec"); err == nil {
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "h2spec")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	// Failing, not skipping: a conformance suite that does not run
	// proves nothing.
	t.Fatal("h2spec not found: test.sh installs it (go install github.com/summerwind/h2spec/cmd/h2spec)")
	return ""
}

var h2specSummary = regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)

// TestRFC9113ConformanceH2spec runs the HTTP/2 conformance suite (h2spec:
// RFC 9113 and RFC 7541) against the edge, over cleartext h2c and over
// TLS, and wants every case passed.
func TestRFC9113ConformanceH2spec(t *testing.T) {
	bin := h2specPath(t)
	dir := t.TempDir()
	cert, key, _ := writeCert(t, dir, "a", "a.example")
	origin := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		// Long enough for the cases that need a body to split
		// across flow control windows, which h2spec skips otherwise.
		io.WriteString(w, strings.Repeat("ok", 32))
	}))
	e := startEdge(t, `
listeners:
  - addr: 127.0.0.1:0
    h2c: true
  - addr: 127.0.0.1:0
    tls:
      certs:
        - {cert: "{{C}}", key: "{{K}}"}
`+oneRoute, "{{C}}", cert, "{{K}}", key, "{{ORIGIN}}", origin)
	for i, mode := range []string{"h2c", "tls"} {
		t.Run(mode, func(t *testing.T) {
			addr := e.Node.Addrs()[i].String()
			host, port := addr[:strings.LastIndex(addr, ":")], addr[strings.LastIndex(addr, ":")+1:]
			args := []string{"-h", host, "-p", port, "-o", "3"}
			if mode == "tls" {
				args = append(args, "-t", "-k")
			}
			out, _ := exec.Command(bin, args...).CombinedOutput()
			m := h2specSummary.FindStringSubmatch(string(out))
			if m == nil {
				t.Fatalf("h2spec gave no summary:\n%s", out)
			}
			t.Logf("h2spec over %s: %s", mode, m[0])
			if m[1] != m[2] {
				t.Errorf("h2spec over %s: %s\n%s", mode, m[0], out)
			}
		})
	}
}

// failures keeps the failed cases of h2spec's report.
func failures(out string) string {
	i := strings.Index(out, "Failures:")
	if i < 0 {
		return out
	}
	return out[i:]
}
