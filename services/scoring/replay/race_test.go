//go:build race

package replay

// raceEnabled: the race detector slows the fleet simulator ~10x, so the
// measurements run on smaller samples under it.
const raceEnabled = true
