// Package sdnotify speaks systemd's service protocols: readiness
// notification (sd_notify(3): READY=1 once the listeners are up,
// RELOADING=1 and READY=1 around a reload, STOPPING=1 when draining) and
// socket activation (sd_listen_fds(3): listeners passed as file
// descriptors from 3 on). Without $NOTIFY_SOCKET, or $LISTEN_FDS for this
// process, every call does nothing.
package sdnotify

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Notify sends state, newline-separated KEY=VALUE assignments, to the
// service manager; it does nothing without $NOTIFY_SOCKET.
func Notify(state string) error {
	path := os.Getenv("NOTIFY_SOCKET")
	if path == "" {
		return nil
	}
	// A name starting with @ is in the abstract namespace; Go's net
	// package maps the @ to the leading NUL byte.
	c, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte(state)); err != nil {
		return fmt.Errorf("sd_notify: %w", err)
	}
	return nil
}

// Ready says the service is up: its listeners accept connections.
func Ready() error { return Notify("READY=1") }

// Reloading says a reload has begun. systemd (Type=notify-reload) needs
// the CLOCK_MONOTONIC time with it, to tell this reload from an earlier
// one; READY=1 ends it.
func Reloading() error {
	return Notify("RELOADING=1\nMONOTONIC_USEC=" + strconv.FormatInt(monotonicUsec(), 10))
}

// Stopping says the service is draining before it exits.
func Stopping() error { return Notify("STOPPING=1") }

func monotonicUsec() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0
	}
	return ts.Nano() / int64(time.Microsecond)
}

// firstFD is the first descriptor systemd passes (SD_LISTEN_FDS_START).
const firstFD = 3

// Listeners returns the stream sockets systemd passed to this process,
// in the order of the socket unit's ListenStream= lines; none when the
// process was not socket-activated. The environment variables are
// cleared, so that child processes do not take the sockets for theirs.
func Listeners() ([]net.Listener, error) {
	pid, err := strconv.Atoi(os.Getenv("LISTEN_PID"))
	if err != nil || pid != os.Getpid() {
		return nil, nil
	}
	n, err := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	if err != nil || n < 0 {
		return nil, errors.New("socket activation: bad LISTEN_FDS " + strconv.Quote(os.Getenv("LISTEN_FDS")))
	}
	os.Unsetenv("LISTEN_PID")
	os.Unsetenv("LISTEN_FDS")
	os.Unsetenv("LISTEN_FDNAMES")
	lns := make([]net.Listener, 0, n)
	for fd := firstFD; fd < firstFD+n; fd++ {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "systemd-socket-"+strconv.Itoa(fd))
		l, err := net.FileListener(f) // a copy of the descriptor
		f.Close()
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("socket activation: descriptor %d: %w", fd, err)
		}
		lns = append(lns, l)
	}
	return lns, nil
}
