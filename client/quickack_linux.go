package client

import "syscall"

// quickAck asks the kernel to acknowledge the origin's next segments at
// once instead of delaying the ACK (up to 40 ms) in the hope of sending it
// with data. The proxy sends nothing until the response is read, so a
// delayed ACK only waits out an origin with Nagle's algorithm on that
// writes its head and body in two writes: the body leaves the origin only
// once the head is acknowledged. Linux clears the flag on its own, so it is
// set after each request written on a new connection, or on one whose last
// response body did not come with its head (conn.quick); an origin whose
// bodies come with their heads saves the system call. Errors are ignored:
// the exchange still works, only slower.
func (c *conn) quickAck() {
	if c.raw != nil {
		_ = c.raw.Control(setQuickAck)
	}
}

func setQuickAck(fd uintptr) {
	_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
}
