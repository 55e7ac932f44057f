package node

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// Zero-downtime upgrade, as nginx and Pingora do it: the running process
// listens on a Unix socket; a new process (a new binary, or the same one
// with a new config) connects, receives the listening sockets' file
// descriptors (SCM_RIGHTS), starts serving on them and says so; the old
// process then stops accepting and drains. The sockets never close, so no
// connection is refused during the switch.
//
// Whoever connects to the socket gets the listening sockets, so both ends
// check who the other is: the socket lives in a directory of this user's
// that no other user may change (RuntimeDir, 0700, by default), the socket
// file is 0600, and each side refuses a peer running under another user id
// (SO_PEERCRED).

// handoff is the message that travels with the descriptors.
type handoff struct {
	Public int  `json:"public"` // how many public listeners come first
	Admin  bool `json:"admin"`  // whether the admin listener follows
}

// ServeUpgrades accepts one takeover on the Unix socket at path. It returns
// a channel closed once a new process has taken the listeners over: the
// caller should then Shutdown and exit.
func (n *Node) ServeUpgrades(path string) (<-chan struct{}, error) {
	if err := ownDir(filepath.Dir(path), 0o022); err != nil {
		return nil, fmt.Errorf("upgrade socket: %w", err)
	}
	_ = os.Remove(path) // a socket left by a process that is gone
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade socket: %w", err)
	}
	l.SetUnlinkOnClose(false) // the new process replaces the file itself
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("upgrade socket: %w", err)
	}
	done := make(chan struct{})
	go func() {
		defer l.Close()
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			if err := samePeer(c); err != nil {
				c.Close()
				n.Log.Warn("upgrade socket: connection refused", "error", err)
				continue
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
		// Not f.Fd(): it puts the descriptor in blocking mode, and the
		// duplicate shares that flag with the listener still serving
		// here, whose Accept would then block in the kernel and its
		// Close wait for ever.
		raw, err := f.SyscallConn()
		if err != nil {
			return err
		}
		if err := raw.Control(func(fd uintptr) { fds[i] = int(fd) }); err != nil {
			return err
		}
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
	if err := ownDir(filepath.Dir(path), 0o022); err != nil {
		return nil, fmt.Errorf("upgrade: %w", err)
	}
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("upgrade: no running process at %s: %w", path, err)
	}
	if err := samePeer(c); err != nil {
		c.Close()
		return nil, fmt.Errorf("upgrade: %w", err)
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

// UpgradeSocket is the default upgrade socket of the node running
// configFile: a name derived from the file's absolute path, so that two
// nodes with different configs do not meet, in RuntimeDir.
func UpgradeSocket(configFile string) (string, error) {
	abs, err := filepath.Abs(configFile)
	if err != nil {
		return "", fmt.Errorf("upgrade socket: %w", err)
	}
	dir, err := RuntimeDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(dir, hex.EncodeToString(sum[:6])+".sock"), nil
}

// RuntimeDir is the private directory of the upgrade sockets:
// $XDG_RUNTIME_DIR/outpost, or outpost-UID in the system's temporary
// directory without that variable. It is created with mode 0700, and
// refused unless it is a directory (not a link) owned by this user and
// closed to group and others: in a shared /tmp, another user may have
// made it first.
func RuntimeDir() (string, error) {
	dir := filepath.Join(os.TempDir(), "outpost-"+strconv.Itoa(os.Geteuid()))
	if base := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(base) {
		dir = filepath.Join(base, "outpost")
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("upgrade socket: %w", err)
	}
	if err := ownDir(dir, 0o077); err != nil {
		return "", fmt.Errorf("upgrade socket: %w", err)
	}
	return dir, nil
}

// ownDir refuses a directory that is not this user's, or that grants
// others any of the permission bits in others.
func ownDir(dir string, others fs.FileMode) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s is not owned by this user", dir)
	case fi.Mode().Perm()&others != 0:
		return fmt.Errorf("%s is open to other users (mode %#o, want none of %#o)", dir, fi.Mode().Perm(), others)
	}
	return nil
}

// samePeer refuses a peer process running under another user id.
func samePeer(c *net.UnixConn) error {
	uid, err := peerUID(c)
	if err != nil {
		return fmt.Errorf("peer credentials: %w", err)
	}
	if uid != os.Geteuid() {
		return fmt.Errorf("peer runs as uid %d, not %d", uid, os.Geteuid())
	}
	return nil
}
