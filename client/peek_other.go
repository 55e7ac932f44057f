//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package client

import "syscall"

// peekSocket cannot look ahead on this platform; it reports the socket as
// live and leaves stale connections to the retry.
func peekSocket(uintptr, []byte) (int, error) { return 0, syscall.EAGAIN }
