package cache

import (
	"bytes"
	"io"
	"os"
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
		rep, err := e.c.Serve(e.originOf(t.Context(), o.fetch), request("GET", tc.path), pol, nil)
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

// TestFillsReleaseTheirDiskFiles checks that a disk fill's file is closed
// once its readers are done, not when the writer is collected.
func TestFillsReleaseTheirDiskFiles(t *testing.T) {
	dir := t.TempDir()
	clock := &fakeClock{t: epoch0}
	o := newOrigin(func(req *httphead.Request, n int) answer {
		return answer{headers: []string{"Cache-Control: max-age=600"}, body: strings.Repeat("x", 10000)}
	})
	pol := &Policy{Enabled: true}
	s, err := disk.Open(dir, disk.Options{Capacity: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	e := &env{t: t, clock: clock, store: s, c: New(s, Options{Clock: clock.Now}), pol: pol}
	for i := range 50 {
		if r := e.get(o, "/f/"+strings.Repeat("a", i)); r.readErr != nil {
			t.Fatal(r.readErr)
		}
	}
	e.waitFills()
	fds, _ := os.ReadDir("/proc/self/fd")
	open := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && strings.HasPrefix(target, dir+"/objects") {
			open++
		}
	}
	if open != 0 {
		t.Fatalf("%d object files still open after 50 fills", open)
	}
}
