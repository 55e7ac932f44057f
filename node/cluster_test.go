package node

import (
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/internal/testnet"
)

// Without a cluster: block no NATS server runs and /cluster says so.
func TestNodeWithoutClusterRunsNoNATS(t *testing.T) {
	n := startNode(t, "admin: {token_file: "+writeTokenFile(t, "s3cret")+"}\n", Options{})
	if status, body := adminCall(t, n, "GET", "/cluster", "", "Authorization", "Bearer s3cret"); status != 404 || !strings.Contains(body, "no cluster") {
		t.Fatalf("GET /cluster: %d %s", status, body)
	}
	buf := make([]byte, 1<<20)
	if stacks := string(buf[:runtime.Stack(buf, true)]); strings.Contains(stacks, "nats-io") {
		t.Fatalf("a NATS goroutine runs on a node without a cluster:\n%s", stacks)
	}
}

// A one-node cluster (embedded server, one replica): purges go through
// the stream and answer with the members that applied them; a pushed
// config is checked, applied, and kept by a reload of the file.
func TestClusterNodePurgesThroughTheStreamAndTakesPushedConfigs(t *testing.T) {
	yaml := fmt.Sprintf(`admin: {token_file: %s}
cluster: {name: solo, listen: %q, dir: %q}
routes: [{respond: {status: 200, body: "file"}}]
`, writeTokenFile(t, "s3cret"), testnet.FreeAddr(t), t.TempDir())
	n := startNode(t, yaml, Options{})
	auth := []string{"Authorization", "Bearer s3cret", "Content-Type", "application/json"}
	deadline := time.Now().Add(20 * time.Second)
	for {
		status, body := adminCall(t, n, "POST", "/purge", `{"urls": ["http://a.test/x"]}`, auth...)
		if status == 200 && strings.Contains(body, `"applied": [`+"\n"+`    "solo"`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("purge: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	yamlAuth := []string{"Authorization", "Bearer s3cret", "Content-Type", "application/yaml"}
	if status, body := adminCall(t, n, "POST", "/cluster/config", "routes: [{upstream: nowhere}]\n", yamlAuth...); status != 422 {
		t.Fatalf("invalid push: %d %s", status, body)
	}
	if status, body := adminCall(t, n, "POST", "/cluster/config", "routes: [{respond: {status: 200, body: pushed}}]\n", yamlAuth...); status != 200 {
		t.Fatalf("push: %d %s", status, body)
	}
	if got := publicGet(t, n, "/"); got != "pushed" {
		t.Fatalf("after the push the node answers %q", got)
	}
	if err := n.ReloadFile(n.Config().File); err != nil {
		t.Fatal(err)
	}
	if got := publicGet(t, n, "/"); got != "pushed" {
		t.Fatalf("a reload of the file undid the push: %q", got)
	}
	if status, body := adminCall(t, n, "GET", "/cluster", "", auth...); status != 200 || !strings.Contains(body, `"config_version": 1`) {
		t.Fatalf("GET /cluster: %d %s", status, body)
	}
}
