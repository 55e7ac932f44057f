// Package testnet hands tests loopback addresses for servers that bind
// them later (in a child process, or a node started after its peers were
// told where it listens): ports free when asked, and never one twice in a
// process, since the kernel may give a port just given back to the next
// listener.
package testnet

import (
	"net"
	"sync"
	"testing"
)

var handedOut = struct {
	mu    sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// FreeAddr returns a loopback address whose port is free now, never one
// it returned before in this process.
func FreeAddr(t testing.TB) string {
	t.Helper()
	handedOut.mu.Lock()
	defer handedOut.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// FreeAddrs returns n addresses as FreeAddr does.
func FreeAddrs(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = FreeAddr(t)
	}
	return out
}
