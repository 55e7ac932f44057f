package proxyproto

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"
)

func listen(t *testing.T, timeout time.Duration) *Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return Wrap(ln, []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, timeout)
}

// dial connects to l and writes data, returning the client side.
func dial(t *testing.T, l net.Listener, data string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, data); err != nil {
		t.Fatal(err)
	}
	return c
}

func accept(t *testing.T, l net.Listener) net.Conn {
	t.Helper()
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestListenerReportsTheClientFromTheHeader(t *testing.T) {
	l := listen(t, time.Second)
	dial(t, l, "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\nhello")
	c := accept(t, l)
	if got := c.RemoteAddr().String(); got != "192.0.2.1:12345" {
		t.Errorf("RemoteAddr = %s", got)
	}
	if got := c.LocalAddr().String(); got != "198.51.100.7:443" {
		t.Errorf("LocalAddr = %s", got)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "hello" {
		t.Errorf("Read = %q, %v", buf, err)
	}
}

func TestListenerKeepsThePeerAddressForLocalHeaders(t *testing.T) {
	l := listen(t, time.Second)
	client := dial(t, l, v2(0x20, 0x00)+"x")
	c := accept(t, l)
	if got, want := c.RemoteAddr().String(), client.LocalAddr().String(); got != want {
		t.Errorf("RemoteAddr = %s, want the peer %s", got, want)
	}
}

func TestListenerClosesConnectionsWithoutHeader(t *testing.T) {
	l := listen(t, time.Second)
	client := dial(t, l, "GET / HTTP/1.1\r\n\r\n")
	c := accept(t, l)
	if _, err := c.Read(make([]byte, 10)); !errors.Is(err, ErrNoHeader) {
		t.Fatalf("Read err = %v, want ErrNoHeader", err)
	}
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Errorf("client read after bad header = %v, want the connection closed", err)
	}
}

func TestAcceptIsNotHeldUpByASilentClient(t *testing.T) {
	l := listen(t, time.Minute)
	dial(t, l, "") // says nothing
	silent := accept(t, l)
	dial(t, l, "PROXY TCP4 192.0.2.1 198.51.100.7 12345 443\r\n")
	next := accept(t, l)
	if got := next.RemoteAddr().String(); got != "192.0.2.1:12345" {
		t.Errorf("RemoteAddr = %s", got)
	}
	silent.Close()
}

func TestHeaderReadTimesOut(t *testing.T) {
	l := listen(t, 20*time.Millisecond)
	dial(t, l, "PROXY TCP4 192.0.2.1")
	c := accept(t, l)
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read err = %v, want a timeout", err)
	}
}

func TestHeaderDeadlineDoesNotOutliveTheHeader(t *testing.T) {
	const timeout = 20 * time.Millisecond
	l := listen(t, timeout)
	client := dial(t, l, "PROXY UNKNOWN\r\n")
	c := accept(t, l)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(c, make([]byte, 1))
		got <- err
	}()
	<-time.After(5 * timeout) // past the header deadline, before the owner's
	io.WriteString(client, "x")
	if err := <-got; err != nil {
		t.Fatalf("Read after the header timeout = %v, want the owner's deadline kept", err)
	}
}

func TestWritesPassThroughToThePeer(t *testing.T) {
	l := listen(t, time.Second)
	client := dial(t, l, "PROXY UNKNOWN\r\n")
	c := accept(t, l)
	// Consume the header, so that closing does not reset the connection.
	c.RemoteAddr()
	// io.Copy goes through Conn.ReadFrom.
	if _, err := io.Copy(c, io.LimitReader(zeros{}, 100000)); err != nil {
		t.Fatal(err)
	}
	c.Close()
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := io.Copy(io.Discard, client)
	if err != nil || n != 100000 {
		t.Errorf("peer got %d bytes, %v", n, err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestListenerClosesPeersOutsideItsNetworks(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := Wrap(ln, []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}, time.Second)
	t.Cleanup(func() { l.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			accepted <- c
		}
	}()
	client := dial(t, l, "PROXY TCP4 203.0.113.7 198.51.100.7 12345 443\r\n")
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := client.Read(make([]byte, 1)); err == nil || os.IsTimeout(err) {
		t.Errorf("client read = %v, want the connection closed", err)
	}
	select {
	case c := <-accepted:
		t.Errorf("a connection from %s was accepted", c.RemoteAddr())
		c.Close()
	default:
	}
}
