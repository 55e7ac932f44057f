package cache

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestHostileOriginHeaders sends contradictory, garbage and oversized cache
// headers; each case says whether the object may be stored, and every
// client must get the origin's exact bytes.
func TestHostileOriginHeaders(t *testing.T) {
	many := make([]string, 0, 5000)
	for i := range 5000 {
		many = append(many, fmt.Sprintf("X-Field-%d: %s", i, strings.Repeat("v", 20)))
	}
	tests := []struct {
		name    string
		headers []string
		stored  bool
	}{
		{"contradictory lines: no-store wins", []string{"Cache-Control: max-age=60", "Cache-Control: no-store"}, false},
		{"duplicate max-age: smallest wins", []string{"Cache-Control: max-age=60, max-age=0"}, false},
		{"public and private: private wins", []string{"Cache-Control: public, private, max-age=60"}, false},
		{"absurd max-age", []string{"Cache-Control: max-age=" + strings.Repeat("9", 5000)}, true},
		{"negative max-age", []string{"Cache-Control: max-age=-60"}, false},
		{"garbage dates", []string{"Cache-Control: max-age=60", "Date: yesterday", "Expires: never", "Last-Modified: \x00"}, true},
		{"garbage age", []string{"Cache-Control: max-age=60", "Age: -1e9"}, true},
		{"huge age", []string{"Cache-Control: max-age=60", "Age: 99999999999999999999"}, true},
		{"huge header set", append([]string{"Cache-Control: max-age=60"}, many...), true},
		{"huge cache-control", []string{"Cache-Control: " + strings.Repeat("foo=bar, ", 10000) + "max-age=60"}, true},
		{"huge vary list", []string{"Cache-Control: max-age=60", "Vary: " + strings.Repeat("X-A, ", 2000)}, true},
		{"binary junk in directives", []string{"Cache-Control: \xff\xfe max-age=\x0060"}, false},
		{"only commas", []string{"Cache-Control: ,,,,,,", "ETag: \"e\""}, true},
		{"unterminated targeted field", []string{"CDN-Cache-Control: max-age=60, no-cache=\"", "Cache-Control: no-store"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			body := strings.Repeat("payload-", 100)
			o := fixed(answer{headers: tt.headers, body: body})
			for i := range 3 {
				r := e.get(o, "/hostile")
				if r.readErr != nil || r.body != body || r.status != 200 {
					t.Fatalf("request %d: status %d, err %v, %d bytes", i, r.status, r.readErr, len(r.body))
				}
				if i == 0 && e.isStored("/hostile") != tt.stored {
					t.Errorf("stored: %v, want %v", !tt.stored, tt.stored)
				}
				e.waitFills()
				e.clock.Advance(time.Second)
			}
		})
	}
}
