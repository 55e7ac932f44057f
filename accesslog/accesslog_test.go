package accesslog

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

func TestLineIsValidJSONEvenWithHostileValues(t *testing.T) {
	var j Line
	j.Reset()
	j.Str("path", "/a\"b\\c\n\x00\x7f")
	j.Bytes("ua", []byte("bad \xff utf8 \u00e9"))
	j.Int("status", 200)
	j.Float("ms", 1.5)
	j.Time("time", time.Unix(0, 0))
	var m map[string]any
	if err := json.Unmarshal(j.End(), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, j.b)
	}
	if m["path"] != "/a\"b\\c\n\x00\x7f" || m["status"] != 200.0 || m["ua"] != "bad \ufffd utf8 \u00e9" {
		t.Fatalf("fields: %v", m)
	}
}

func TestLoggerFlushesOnClose(t *testing.T) {
	var out bytes.Buffer
	l := New(&out, time.Hour)
	var j Line
	j.Reset()
	j.Int("n", 1)
	l.Write(j.End())
	if out.Len() != 0 {
		t.Fatal("written before flush")
	}
	l.Close()
	if out.String() != "{\"n\":1}\n" {
		t.Fatalf("got %q", out.String())
	}
}

func BenchmarkLine(b *testing.B) {
	b.ReportAllocs()
	var j Line
	now := time.Now()
	for i := 0; i < b.N; i++ {
		j.Reset()
		j.Time("time", now)
		j.Str("method", "GET")
		j.Bytes("path", []byte("/simple/requests/"))
		j.Int("status", 200)
		_ = j.End()
	}
}
