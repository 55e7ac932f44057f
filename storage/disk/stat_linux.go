package disk

import "syscall"

// mtime returns a file's modification time in nanoseconds.
func mtime(st *syscall.Stat_t) int64 { return st.Mtim.Nano() }
