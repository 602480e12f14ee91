package loadtest

import (
	"hash/fnv"
	"iter"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/telemetry"
)

// Delayed holds back the events of the devices offline selects and hands
// them on d later (in simulated time): boxes that lose coverage and upload
// their buffer when they are back, so the pipeline sees late data (after
// scoring's grace period, it becomes late events and ledger adjustments).
// Each device's events keep their order; held events ride at the front of a
// later chunk, and whatever is still held at the end comes in one last
// chunk. The chunks' Days (ground truth) are not moved.
func Delayed(chunks iter.Seq[fleet.Chunk], offline func(deviceID string) bool, d time.Duration) iter.Seq[fleet.Chunk] {
	type held struct {
		release time.Time
		events  []telemetry.Event
	}
	return func(yield func(fleet.Chunk) bool) {
		var queue []held
		var last fleet.Chunk
		for c := range chunks {
			var out, hold []telemetry.Event
			for len(queue) > 0 && !queue[0].release.After(c.End) {
				out = append(out, queue[0].events...)
				queue = queue[1:]
			}
			for lo := 0; lo < len(c.Events); {
				hi := lo + 1
				for hi < len(c.Events) && c.Events[hi].DeviceID == c.Events[lo].DeviceID {
					hi++
				}
				if offline(c.Events[lo].DeviceID) {
					hold = append(hold, c.Events[lo:hi]...)
				} else {
					out = append(out, c.Events[lo:hi]...)
				}
				lo = hi
			}
			if len(hold) > 0 {
				queue = append(queue, held{release: c.End.Add(d), events: hold})
			}
			c.Events = out
			last = c
			if !yield(c) {
				return
			}
		}
		var rest []telemetry.Event
		for _, h := range queue {
			rest = append(rest, h.events...)
		}
		if len(rest) > 0 {
			yield(fleet.Chunk{Start: last.End, End: last.End, First: last.First, Last: last.First, Events: rest})
		}
	}
}

// EveryNth selects about one device in n, by a hash of its id (the same
// devices every run): for Delayed.
func EveryNth(n int) func(deviceID string) bool {
	return func(id string) bool {
		h := fnv.New32a()
		h.Write([]byte(id))
		return n > 0 && h.Sum32()%uint32(n) == 0
	}
}
