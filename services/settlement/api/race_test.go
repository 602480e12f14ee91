//go:build race

package api_test

// raceEnabled: the race detector slows the concurrency test about tenfold.
const raceEnabled = true
