package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// LogClock is one scoring task's log time: the time that closes its days,
// read from the gateways' time marks on its partition (docs/scoring.md,
// "Log time"). Each gateway's mark says "I append to this partition only
// records I accepted at intake time >= T from now on"; the log time is the
// lowest mark over the live gateways, never moving back. A gateway is live
// from its first mark until it leaves (a mark flagged leaving) or until
// another gateway's mark is more than the expiry ahead of its own (it
// crashed or its clock lags: waiting for it would stop every close). It is
// pure: no clock, no I/O; the same marks in the same order give the same
// times, so replays close the same days.
type LogClock struct {
	expiry int64
	marks  map[string]int64 // live gateway -> its last mark, Unix ms
	time   int64            // the log time (0 before the first mark)
	seen   bool             // a mark was applied (the task runs on marks)
	dirty  bool
}

// NewLogClock returns a clock with no marks. expiry is how far another
// gateway's marks must be ahead of a silent gateway's for it to be dropped.
func NewLogClock(expiry time.Duration) *LogClock {
	return &LogClock{expiry: expiry.Milliseconds(), marks: map[string]int64{}}
}

// Active reports whether a mark was ever applied: from then on the task's
// days close on the log time only, never on event time.
func (c *LogClock) Active() bool { return c.seen }

// Time is the log time, Unix ms (0 before the first mark).
func (c *LogClock) Time() int64 { return c.time }

// Gateways are the live gateways and their last marks (a copy).
func (c *LogClock) Gateways() map[string]int64 { return maps.Clone(c.marks) }

// Mark applies gateway's mark t (Unix ms) and returns the log time. A
// gateway's marks never move back (an older one is kept as the newer);
// leaving drops the gateway.
func (c *LogClock) Mark(gateway string, t int64, leaving bool) int64 {
	c.seen, c.dirty = true, true
	if leaving {
		delete(c.marks, gateway)
	} else if old, ok := c.marks[gateway]; !ok || t > old {
		c.marks[gateway] = t
	}
	if len(c.marks) == 0 {
		return c.time
	}
	hi := int64(-1 << 63)
	for _, m := range c.marks {
		hi = max(hi, m)
	}
	lo := hi
	for g, m := range c.marks {
		if m < hi-c.expiry {
			delete(c.marks, g)
			continue
		}
		lo = min(lo, m)
	}
	c.time = max(c.time, lo)
	return c.time
}

// clockVersion is the first byte of the clock's changelog record.
const clockVersion = 1

// Dirty reports whether the clock changed since the last AppendBinary.
func (c *LogClock) Dirty() bool { return c.dirty }

// AppendBinary appends the clock's state (its changelog record) and clears
// Dirty: version byte, log time (8 bytes big-endian), the count of live
// gateways (uvarint), then for each in id order its id (uvarint length,
// bytes) and last mark (8 bytes big-endian).
func (c *LogClock) AppendBinary(b []byte) []byte {
	c.dirty = false
	b = append(b, clockVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(c.time))
	b = binary.AppendUvarint(b, uint64(len(c.marks)))
	for _, g := range slices.Sorted(maps.Keys(c.marks)) {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
		b = binary.BigEndian.AppendUint64(b, uint64(c.marks[g]))
	}
	return b
}

// Restore replaces the clock's state with a record written by
// AppendBinary. A nil value resets it to no marks.
func (c *LogClock) Restore(v []byte) error {
	clear(c.marks)
	c.time, c.seen, c.dirty = 0, false, false
	if v == nil {
		return nil
	}
	if len(v) < 10 || v[0] != clockVersion {
		return fmt.Errorf("log clock: bad record (%d bytes)", len(v))
	}
	t := int64(binary.BigEndian.Uint64(v[1:]))
	n, k := binary.Uvarint(v[9:])
	rest := v[9+max(k, 0):]
	if k <= 0 || n > uint64(len(rest)) {
		return errors.New("log clock: bad gateway count")
	}
	marks := make(map[string]int64, n)
	for range n {
		g, r, err := readString(rest)
		if err != nil || len(r) < 8 {
			return errors.New("log clock: truncated gateway")
		}
		marks[g] = int64(binary.BigEndian.Uint64(r))
		rest = r[8:]
	}
	if len(rest) != 0 {
		return errors.New("log clock: trailing bytes")
	}
	c.time, c.marks, c.seen = t, marks, true
	return nil
}
