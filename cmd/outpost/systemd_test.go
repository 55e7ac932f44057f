package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The binary under a service manager: it takes its listener from the
// passed socket (LISTEN_FDS, sd_listen_fds(3)), says READY=1 once
// serving, RELOADING=1 with MONOTONIC_USEC then READY=1 around a SIGHUP
// reload, and STOPPING=1 on SIGTERM (sd_notify(3)).
func TestSystemdNotifyAndSocketActivation(t *testing.T) {
	origin, _ := cacheableOrigin(t)
	sock := filepath.Join(t.TempDir(), "notify")
	nc, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	read := func() string {
		buf := make([]byte, 1024)
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := nc.Read(buf)
		if err != nil {
			t.Fatalf("no notification: %v", err)
		}
		return string(buf[:n])
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, _ := ln.(*net.TCPListener).File()
	ln.Close() // the child holds the socket through lf
	addr := ln.Addr().String()
	file := writeConfig(t, addr, origin.Listener.Addr().String(), "")
	// systemd sets LISTEN_PID to the service's pid: the shell's, which exec keeps.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" run -c "$1"`, binary, file)
	cmd.Env = append(testEnv(t), "NOTIFY_SOCKET="+sock)
	cmd.ExtraFiles = []*os.File{lf}
	out := &syncBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	if got := read(); got != "READY=1" {
		t.Fatalf("first notification %q\n%s", got, out.String())
	}
	resp, err := http.Get("http://" + addr + "/")
	if err != nil {
		t.Fatalf("the passed socket does not serve: %v\n%s", err, out.String())
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	cmd.Process.Signal(syscall.SIGHUP)
	if got := read(); !strings.HasPrefix(got, "RELOADING=1\nMONOTONIC_USEC=") {
		t.Errorf("on SIGHUP: %q", got)
	}
	if got := read(); got != "READY=1" {
		t.Errorf("after the reload: %q", got)
	}
	waitLogOut(t, out, "config reloaded")
	cmd.Process.Signal(syscall.SIGTERM)
	if got := read(); got != "STOPPING=1" {
		t.Errorf("on SIGTERM: %q", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("exit: %v\n%s", err, out.String())
	}
}

func waitLogOut(t *testing.T, out *syncBuf, text string) {
	t.Helper()
	waitLog(t, &proc{out: out}, text)
}
