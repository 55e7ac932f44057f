package cache

import (
	"context"
	"testing"

	"github.com/outpost-edge/outpost/trace"
)

// TestTraceRecordsDecisions checks that the trace names the key, the
// outcome, the source of the lifetime and why nothing was stored.
func TestTraceRecordsDecisions(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		want    map[string]string
	}{
		{"stored", []string{"Cache-Control: max-age=60, s-maxage=3600"}, map[string]string{
			"cache-key": "https://example.com/t", "cache": "miss", "cache-ttl": "3600s from s-maxage", "cache-store": "stored"}},
		{"not stored", []string{"Cache-Control: private"}, map[string]string{
			"cache": "miss", "cache-reason": "private", "cache-store": "not stored: private"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			tr := &trace.Trace{}
			tr.Reset(e.clock.Now())
			o := fixed(answer{headers: tt.headers, body: "b"})
			rep, err := e.c.Serve(e.originOf(context.Background(), o.fetch), request("GET", "/t"), e.pol, tr)
			if err != nil {
				t.Fatal(err)
			}
			readReply(rep)
			for stage, detail := range tt.want {
				if got := tr.Find(stage); got != detail {
					t.Errorf("trace %s = %q, want %q (trace: %s)", stage, got, detail, tr.AppendHeader(nil))
				}
			}
		})
	}
}
