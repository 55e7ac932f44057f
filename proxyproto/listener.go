package proxyproto

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"
)

// DefaultTimeout bounds the header read when Wrap is given a zero timeout.
const DefaultTimeout = 5 * time.Second

// Listener wraps a net.Listener whose peers all send a PROXY header.
type Listener struct {
	net.Listener
	from    []netip.Prefix
	timeout time.Duration
}

// Wrap returns a listener whose connections read and strip the PROXY header
// before any data, and report the client it names as their RemoteAddr.
//
// Only peers in from (the load balancers) may speak: a header lets its
// sender claim any client address, and so pass every rule keyed on it. A
// connection from any other peer is closed on arrival, before anything is
// read from it; an empty from closes every connection. timeout bounds the
// header read (zero means DefaultTimeout). A connection with a missing or
// invalid header is closed and its Read returns the error.
func Wrap(l net.Listener, from []netip.Prefix, timeout time.Duration) *Listener {
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Listener{Listener: l, from: from, timeout: timeout}
}

// Accept returns the next connection from an allowed peer without reading
// from it, so a slow client cannot hold up the accept loop; the header is
// read on first use. Connections from other peers are closed and skipped.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if !l.allowed(c.RemoteAddr()) {
			c.Close()
			continue
		}
		return &Conn{Conn: c, br: bufio.NewReaderSize(c, 256), timeout: l.timeout}, nil
	}
}

// allowed reports whether peer is in the networks that may send headers.
func (l *Listener) allowed(peer net.Addr) bool {
	tcp, ok := peer.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip := tcp.AddrPort().Addr().Unmap()
	for _, p := range l.from {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// Conn is a connection whose PROXY header is read by the first call to Read,
// RemoteAddr or LocalAddr (whichever comes first; the others wait for it).
type Conn struct {
	net.Conn
	br      *bufio.Reader
	timeout time.Duration

	// mu guards readDeadline, the deadline the owner asked for, which the
	// header read must restore after using its own.
	mu           sync.Mutex
	readDeadline time.Time

	once     sync.Once
	err      error    // header error, set once
	src, dst net.Addr // from the header, nil when it named none; set once
}

// Read reads the header if that has not happened yet, then application data.
func (c *Conn) Read(p []byte) (int, error) {
	if err := c.header(); err != nil {
		return 0, err
	}
	return c.br.Read(p)
}

// RemoteAddr is the client named by the header, or the peer's own address
// when the header named none (LOCAL, UNKNOWN) or could not be read.
func (c *Conn) RemoteAddr() net.Addr {
	if c.header() == nil && c.src != nil {
		return c.src
	}
	return c.Conn.RemoteAddr()
}

// LocalAddr is the destination named by the header, or the local address.
func (c *Conn) LocalAddr() net.Addr {
	if c.header() == nil && c.dst != nil {
		return c.dst
	}
	return c.Conn.LocalAddr()
}

// NetConn returns the underlying connection, for callers that need its
// concrete type (CloseWrite, SetLinger). Reading from it skips the header
// handling and any bytes already buffered.
func (c *Conn) NetConn() net.Conn { return c.Conn }

// ReadFrom lets io.Copy into the connection use the underlying one's fast
// path (sendfile or splice on a *net.TCPConn), which embedding alone hides.
func (c *Conn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// SetDeadline records the read deadline so the header read can restore it.
func (c *Conn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

// SetReadDeadline records the deadline so the header read can restore it.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.readDeadline = t
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *Conn) header() error {
	c.once.Do(func() {
		c.err = c.readHeader()
		if c.err != nil {
			c.Conn.Close()
		}
	})
	return c.err
}

func (c *Conn) readHeader() error {
	if err := c.Conn.SetReadDeadline(time.Now().Add(c.timeout)); err != nil {
		return fmt.Errorf("proxyproto: set header deadline: %w", err)
	}
	src, dst, err := Read(c.br)
	if err != nil {
		return fmt.Errorf("reading PROXY header from %s: %w", c.Conn.RemoteAddr(), err)
	}
	c.mu.Lock()
	err = c.Conn.SetReadDeadline(c.readDeadline)
	c.mu.Unlock()
	if err != nil {
		return fmt.Errorf("proxyproto: restore deadline: %w", err)
	}
	if src.IsValid() {
		c.src = net.TCPAddrFromAddrPort(src)
		c.dst = net.TCPAddrFromAddrPort(dst)
	}
	return nil
}
