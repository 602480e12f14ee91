package loadtest

import (
	"context"
	"iter"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
)

// Paced releases each chunk once its window has passed on a clock running
// speedup times faster than now from the first call: speedup 1 with a
// simulation starting today streams like a live fleet (each event at most
// one Window late), 60 plays an hour a minute. It stops early when ctx is
// done. sleep nil means a timer.
func Paced(ctx context.Context, chunks iter.Seq[fleet.Chunk], speedup float64, now func() time.Time,
	sleep func(context.Context, time.Duration) error) iter.Seq[fleet.Chunk] {
	if now == nil {
		now = time.Now
	}
	if sleep == nil {
		sleep = pipelines.Sleep
	}
	return func(yield func(fleet.Chunk) bool) {
		var simStart time.Time
		var wallStart time.Time
		for c := range chunks {
			if simStart.IsZero() {
				simStart, wallStart = c.Start, now()
			}
			due := wallStart.Add(time.Duration(float64(c.End.Sub(simStart)) / speedup))
			if wait := due.Sub(now()); wait > 0 {
				if sleep(ctx, wait) != nil {
					return
				}
			}
			if ctx.Err() != nil || !yield(c) {
				return
			}
		}
	}
}
