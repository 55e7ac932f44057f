package node

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

// Zero-downtime upgrade, as nginx and Pingora do it: the running process
// listens on a Unix socket; a new process (a new binary, or the same one
// with a new config) connects, receives the listening sockets' file
// descriptors (SCM_RIGHTS), starts serving on them and says so; the old
// process then stops accepting and drains. The sockets never close, so no
// connection is refused during the switch.

// handoff is the message that travels with the descriptors.
type handoff struct {
	Public int  `json:"public"` // how many public listeners come first
	Admin  bool `json:"admin"`  // whether the admin listener follows
}

// ServeUpgrades accepts one takeover on the Unix socket at path. It returns
// a channel closed once a new process has taken the listeners over: the
// caller should then Shutdown and exit.
func (n *Node) ServeUpgrades(path string) (<-chan struct{}, error) {
	_ = os.Remove(path) // a socket left by a process that is gone
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade socket: %w", err)
	}
	l.SetUnlinkOnClose(false) // the new process replaces the file itself
	done := make(chan struct{})
	go func() {
		defer l.Close()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			if err := n.handOver(c); err != nil {
				n.Log.Error("upgrade handoff failed; still serving", "error", err)
				continue
			}
			n.Log.Info("listeners handed to a new process; draining")
			close(done)
			return
		}
	}()
	return done, nil
}

func (n *Node) handOver(c *net.UnixConn) error {
	defer c.Close()
	files, msg, err := n.listenerFiles()
	if err != nil {
		return err
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	fds := make([]int, len(files))
	for i, f := range files {
		fds[i] = int(f.Fd())
	}
	body, _ := json.Marshal(msg)
	if _, _, err := c.WriteMsgUnix(append(body, '\n'), unixRights(fds...), nil); err != nil {
		return fmt.Errorf("send listeners: %w", err)
	}
	// The new process answers once it serves on them.
	_ = c.SetReadDeadline(time.Now().Add(60 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || line != "ok\n" {
		return fmt.Errorf("new process did not take over: %q %v", line, err)
	}
	return nil
}

// listenerFiles duplicates the listening sockets.
func (n *Node) listenerFiles() ([]*os.File, handoff, error) {
	var files []*os.File
	add := func(l net.Listener) error {
		fl, ok := l.(interface{ File() (*os.File, error) })
		if !ok {
			return fmt.Errorf("listener %s cannot be handed over", l.Addr())
		}
		f, err := fl.File()
		if err != nil {
			return err
		}
		files = append(files, f)
		return nil
	}
	msg := handoff{Public: len(n.lns)}
	for _, l := range n.lns {
		if err := add(l); err != nil {
			return nil, msg, err
		}
	}
	if n.admin != nil {
		msg.Admin = true
		if err := add(n.admin.ln); err != nil {
			return nil, msg, err
		}
	}
	return files, msg, nil
}

// Takeover is what a new process inherits from the old one.
type Takeover struct {
	Options Options // Listeners and AdminListener filled in
	conn    *net.UnixConn
}

// Inherit connects to a running process's upgrade socket and receives its
// listeners. Call Ready once the new node serves on them.
func Inherit(path string) (*Takeover, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade: no running process at %s: %w", path, err)
	}
	buf, oob := make([]byte, 4096), make([]byte, 4096)
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	nb, noob, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("upgrade: receive listeners: %w", err)
	}
	var msg handoff
	if err := json.Unmarshal(buf[:nb], &msg); err != nil {
		c.Close()
		return nil, fmt.Errorf("upgrade: bad handoff message: %w", err)
	}
	fds, err := parseRights(oob[:noob])
	if err != nil || len(fds) != msg.Public+boolInt(msg.Admin) {
		c.Close()
		return nil, errors.Join(fmt.Errorf("upgrade: got %d descriptors, want %d", len(fds), msg.Public+boolInt(msg.Admin)), err)
	}
	t := &Takeover{conn: c}
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "listener")
		l, err := net.FileListener(f)
		f.Close()
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("upgrade: listener %d: %w", i, err)
		}
		if i < msg.Public {
			t.Options.Listeners = append(t.Options.Listeners, l)
		} else {
			t.Options.AdminListener = l
		}
	}
	return t, nil
}

// Ready tells the old process to stop accepting and drain.
func (t *Takeover) Ready() error {
	defer t.conn.Close()
	_, err := t.conn.Write([]byte("ok\n"))
	return err
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}
