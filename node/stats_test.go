package node

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"
)

// statsKey is the form of every fixed key of GET /stats.
var statsKey = regexp.MustCompile(`^[a-z0-9]+(_[a-z0-9]+)*$`)

// timeWords mark a key that holds a duration, which must name its unit.
var timeWords = regexp.MustCompile(`(^|_)(uptime|latency|duration|time|age|ttl|elapsed)(_|$)`)

func TestStatsKeysAreSnakeCaseAndNameTheirUnits(t *testing.T) {
	origin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "max-age=60")
		w.Write([]byte("hello"))
	}))
	defer origin.Close()
	tokens := writeTokenFile(t, "s3cret")
	n := startNode(t, "admin: {addr: \"127.0.0.1:9\", token_file: "+tokens+"}\n"+
		"upstreams: {origin: {servers: [{addr: \""+strings.TrimPrefix(origin.URL, "http://")+"\"}]}}\n"+
		"routes: [{name: all, upstream: origin}]\nlog: {access: \"off\"}\n", Options{})
	for range 2 { // a miss and a hit, so that every part has figures
		if got := publicGet(t, n, "/a"); got != "hello" {
			t.Fatalf("GET /a through the edge: %q", got)
		}
	}
	status, body := adminCall(t, n, "GET", "/stats", "", "Authorization", "Bearer s3cret")
	if status != 200 {
		t.Fatalf("GET /stats: %d %s", status, body)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("GET /stats: %v\n%s", err, body)
	}
	checkStatsKeys(t, "", doc)
	for _, path := range []string{"uptime_seconds", "edge.cache.hits", "edge.cache.capacity_bytes",
		"edge.upstreams.origin.circuit.circuit_open", "edge.upstreams.origin.connections.opened"} {
		if statsValue(doc, path) == nil {
			t.Errorf("GET /stats has no %s:\n%s", path, body)
		}
	}
	servers, _ := statsValue(doc, "edge.upstreams.origin.servers").(map[string]any)
	if len(servers) != 1 {
		t.Fatalf("GET /stats: want one server of upstream origin:\n%s", body)
	}
	for _, s := range servers {
		if lat, ok := s.(map[string]any)["latency_seconds"].(float64); !ok || lat <= 0 || lat > 10 {
			t.Errorf("latency_seconds = %v, want the latency in seconds:\n%s", lat, body)
		}
	}
}

// checkStatsKeys checks every key below v, whose path is path: snake_case,
// and a unit suffix on every duration. The keys of the upstreams and
// servers maps are names and addresses from the config, not checked.
func checkStatsKeys(t *testing.T, path string, v any) {
	t.Helper()
	switch v := v.(type) {
	case map[string]any:
		names := strings.HasSuffix(path, "upstreams") || strings.HasSuffix(path, "servers")
		for k, sub := range v {
			switch {
			case names:
			case !statsKey.MatchString(k):
				t.Errorf("%s.%s: key not in snake_case", path, k)
			case timeWords.MatchString(k) && !strings.HasSuffix(k, "_seconds") && !strings.HasSuffix(k, "_ms"):
				t.Errorf("%s.%s: a duration without its unit (_seconds or _ms)", path, k)
			}
			checkStatsKeys(t, path+"."+k, sub)
		}
	case []any:
		for _, sub := range v {
			checkStatsKeys(t, path+"[]", sub)
		}
	case string:
		if _, err := time.ParseDuration(v); err == nil && v != "0" {
			t.Errorf("%s: %q is a Go duration; give it in seconds under a _seconds key", path, v)
		}
	}
}

// statsValue returns the value at a dotted path of doc, nil if absent.
func statsValue(doc map[string]any, path string) any {
	var v any = doc
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}
