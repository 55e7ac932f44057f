//go:build race

package e2e

// raceEnabled says the tests run under the race detector, which makes
// copying gigabytes several times slower.
const raceEnabled = true
