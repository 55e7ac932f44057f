//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package client

import "syscall"

// peekSocket looks at the next byte of a socket without consuming it or
// blocking: syscall.EAGAIN means nothing is there and the peer is still
// connected.
func peekSocket(fd uintptr, b []byte) (int, error) {
	n, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return n, err
}
