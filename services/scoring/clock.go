package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
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
	marks  []gatewayMark // the live gateways and their last marks (a few per partition: a slice, not a map)
	time   int64         // the log time (0 before the first mark)
	seen   bool          // a mark was applied (the task runs on marks)
	dirty  bool
}

type gatewayMark struct {
	gateway string
	t       int64 // Unix ms
}

// NewLogClock returns a clock with no marks. expiry is how far another
// gateway's marks must be ahead of a silent gateway's for it to be dropped.
func NewLogClock(expiry time.Duration) *LogClock {
	return &LogClock{expiry: expiry.Milliseconds()}
}

// Active reports whether a mark was ever applied: from then on the task's
// days close on the log time only, never on event time.
func (c *LogClock) Active() bool { return c.seen }

// Time is the log time, Unix ms (0 before the first mark).
func (c *LogClock) Time() int64 { return c.time }

// Gateways are the live gateways and their last marks (a copy).
func (c *LogClock) Gateways() map[string]int64 {
	m := make(map[string]int64, len(c.marks))
	for _, g := range c.marks {
		m[g.gateway] = g.t
	}
	return m
}

// Mark applies gateway's mark t (Unix ms) and returns the log time. A
// gateway's marks never move back (an older one is kept as the newer);
// leaving drops the gateway.
func (c *LogClock) Mark(gateway string, t int64, leaving bool) int64 {
	c.seen, c.dirty = true, true
	i := slices.IndexFunc(c.marks, func(g gatewayMark) bool { return g.gateway == gateway })
	switch {
	case leaving:
		if i >= 0 {
			c.marks = slices.Delete(c.marks, i, i+1)
		}
	case i < 0:
		c.marks = append(c.marks, gatewayMark{gateway: gateway, t: t})
	case t > c.marks[i].t:
		c.marks[i].t = t
	}
	if len(c.marks) == 0 {
		return c.time
	}
	hi := int64(-1 << 63)
	for _, g := range c.marks {
		hi = max(hi, g.t)
	}
	lo := hi
	c.marks = slices.DeleteFunc(c.marks, func(g gatewayMark) bool { return g.t < hi-c.expiry })
	for _, g := range c.marks {
		lo = min(lo, g.t)
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
	sorted := slices.SortedFunc(slices.Values(c.marks), func(a, b gatewayMark) int { return strings.Compare(a.gateway, b.gateway) })
	for _, g := range sorted {
		b = binary.AppendUvarint(b, uint64(len(g.gateway)))
		b = append(b, g.gateway...)
		b = binary.BigEndian.AppendUint64(b, uint64(g.t))
	}
	return b
}

// Restore replaces the clock's state with a record written by
// AppendBinary. A nil value resets it to no marks.
func (c *LogClock) Restore(v []byte) error {
	c.marks = c.marks[:0]
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
	var marks []gatewayMark
	for range n {
		g, r, err := readString(rest)
		if err != nil || len(r) < 8 {
			return errors.New("log clock: truncated gateway")
		}
		marks = append(marks, gatewayMark{gateway: g, t: int64(binary.BigEndian.Uint64(r))})
		rest = r[8:]
	}
	// A repeated id (AppendBinary writes none): the last one wins.
	slices.Reverse(marks)
	slices.SortStableFunc(marks, func(a, b gatewayMark) int { return strings.Compare(a.gateway, b.gateway) })
	marks = slices.CompactFunc(marks, func(a, b gatewayMark) bool { return a.gateway == b.gateway })
	if len(rest) != 0 {
		return errors.New("log clock: trailing bytes")
	}
	c.time, c.marks, c.seen = t, marks, true
	return nil
}
