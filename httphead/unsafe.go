package httphead

import "unsafe"

// b2s views b as a string without copying; b must not change while the
// string is in use. Only used for short-lived comparisons.
func b2s(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
