// Package benchfig holds the small statistics the benchmarks print their
// figures with: rounds are alternated with their baseline, and the row is
// the median of the rounds, printed with every round.
package benchfig

import (
	"fmt"
	"slices"
	"strings"
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
