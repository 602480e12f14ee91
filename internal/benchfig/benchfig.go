// Package benchfig holds the small statistics the benchmarks print their
// figures with: rounds are alternated with their baseline, and the row is
// the median of the rounds, printed with every round.
package benchfig

import (
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"testing"
)

// Median is the middle of xs (the mean of the two middle values for an
// even count); 0 for none. xs is not changed.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Rounds formats the rounds' figures in round order, two decimals each.
func Rounds(xs []float64) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf("%.2f", x)
	}
	return strings.Join(parts, " ")
}

// CPUProfile starts a CPU profile written to path and returns its stop:
// a benchmark profiles its measured part alone, without its set-up. It
// fails tb when the file cannot be made or another CPU profile runs (go
// test's -cpuprofile).
func CPUProfile(tb testing.TB, path string) (stop func()) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		tb.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			tb.Error(err)
		}
	}
}
