//go:build !linux

package disk

import "syscall"

// mtime returns 0: the field's name varies across other systems, and Open
// uses it only to evict the oldest first when the capacity shrank.
func mtime(*syscall.Stat_t) int64 { return 0 }
