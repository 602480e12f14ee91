//go:build race

package fleet

// raceEnabled: the race detector slows allocation-heavy code ~10x and
// changes memory use, so the heaviest tests skip under it.
const raceEnabled = true
