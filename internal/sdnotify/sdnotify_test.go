package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// notifySocket listens where the service manager would and returns the
// datagrams it gets.
func notifySocket(t *testing.T, name string) func() string {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", name)
	return func() string {
		buf := make([]byte, 4096)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		return string(buf[:n])
	}
}

// sd_notify(3): READY=1, and RELOADING=1 with MONOTONIC_USEC, which
// systemd's Type=notify-reload requires.
func TestNotifySendsTheStatesOfSdNotify(t *testing.T) {
	for _, name := range []string{filepath.Join(t.TempDir(), "notify"), "@outpost-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)} {
		read := notifySocket(t, name)
		if err := Ready(); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != "READY=1" {
			t.Errorf("%s: %q", name, got)
		}
		before := monotonicUsec()
		if err := Reloading(); err != nil {
			t.Fatal(err)
		}
		got := read()
		usec, ok := strings.CutPrefix(got, "RELOADING=1\nMONOTONIC_USEC=")
		at, err := strconv.ParseInt(usec, 10, 64)
		if !ok || err != nil || at < before || at > before+int64(time.Second/time.Microsecond) {
			t.Errorf("%s: %q, want RELOADING=1 and a monotonic time near %d", name, got, before)
		}
		if err := Stopping(); err != nil {
			t.Fatal(err)
		}
		if got := read(); got != "STOPPING=1" {
			t.Errorf("%s: %q", name, got)
		}
	}
}

func TestNotifyWithoutSocketDoesNothing(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if err := Ready(); err != nil {
		t.Fatal(err)
	}
}

func TestListenersOnlyForThisProcess(t *testing.T) {
	t.Setenv("LISTEN_PID", "1")
	t.Setenv("LISTEN_FDS", "2")
	if lns, err := Listeners(); lns != nil || err != nil {
		t.Fatalf("took another process's sockets: %v %v", lns, err)
	}
}
