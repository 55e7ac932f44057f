package cache

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/outpost-edge/outpost/httphead"
	"github.com/outpost-edge/outpost/storage/disk"
)

// TestObjectsSurviveARestartOnDisk stores objects through a disk store,
// reopens it as a restarted process would, and serves them again with
// their age carried over; a large object streams from the file.
func TestObjectsSurviveARestartOnDisk(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: epoch0}
	big := strings.Repeat("0123456789abcdef", 64<<10) // 1 MiB
	o := newOrigin(func(req *httphead.Request, n int) answer {
		body := "small"
		if string(req.Path) == "/big" {
			body = big
		}
		return answer{headers: []string{"Cache-Control: max-age=600", "Surrogate-Key: k1"}, body: body}
	})
	pol := &Policy{Enabled: true}
	open := func() (*disk.Store, *env) {
		s, err := disk.Open(dir, disk.Options{Capacity: 64 << 20})
		if err != nil {
			t.Fatal(err)
		}
		return s, &env{t: t, clock: clock, store: s, c: New(s, Options{Clock: clock.Now}), pol: pol}
	}
	s, e := open()
	for _, p := range []string{"/small", "/big"} {
		if r := e.get(o, p); r.code != StatusMiss || r.readErr != nil {
			t.Fatalf("%s: %v %v", p, r.code, r.readErr)
		}
	}
	e.waitFills()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	clock.Advance(100 * time.Second)
	s, e = open()
	defer s.Close()
	for _, tc := range []struct{ path, body string }{{"/small", "small"}, {"/big", big}} {
		rep, err := e.c.Serve(t.Context(), request("GET", tc.path), pol, o.fetch, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []byte
		if rep.BodyBytes != nil {
			got = rep.BodyBytes
		} else {
			var buf bytes.Buffer
			if _, err := io.Copy(&buf, rep.Body); err != nil {
				t.Fatal(err)
			}
			got = buf.Bytes()
		}
		if rep.Status != StatusHit || string(got) != tc.body || rep.Head.Header.Get("Age") != "100" {
			t.Errorf("%s after restart: %v, %d bytes, Age %q", tc.path, rep.Status, len(got), rep.Head.Header.Get("Age"))
		}
		rep.Close()
	}
	if o.count.Load() != 2 {
		t.Errorf("origin saw %d requests", o.count.Load())
	}
}
