//go:build race

package server

// raceEnabled: the race detector slows the million-handshake test tenfold.
const raceEnabled = true
