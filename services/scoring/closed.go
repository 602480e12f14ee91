package scoring

import (
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/minecart/minecart/services/telemetry"
)

// ClosedDays keeps a scoring task's closed vehicle-days for a bounded
// lateness after their window end, so that an event arriving after its day
// closed re-scores the day instead of being lost (docs/scoring.md, "Late
// data"). A day is kept as its serialized state (Day.AppendBinary, packed
// by packZeros: a few hundred bytes), never as the live struct; it is decoded only when a late
// event arrives for it. Late events are folded in as they arrive; Revise,
// called at the task's next time mark, turns every day that took late
// events since the last Revise into one new revision of its DailyScore, so
// several late events between two marks make one revision. Like Windows
// it is pure: the stage feeds it and persists what Flush hands out.
type ClosedDays struct {
	rules    *Rules
	lateness int64
	days     map[string]*closedDay // score id "<vehicle>/<date>" -> day
	byEnd    map[int64][]string    // window end -> score ids kept then (for Expire)
	dirty    map[string]struct{}   // changed since the last Flush (nil value: a tombstone)
	revised  map[string]struct{}   // took late events since the last Revise
	bytes    int                   // sum of the kept states' packed lengths
	buf      []byte
	pbuf     []byte // scratch of pack
	ubuf     []byte // scratch of unpack
}

type closedDay struct {
	state     string // packZeros(Day.AppendBinary)
	tz        string
	end       int64
	next      int32 // the revision Revise writes next: 0 for a day no score was emitted for yet, else 1, 2, ...
	lateAdded int64 // events added after the close, over all revisions
	pending   bool  // took late events not yet in a revision
	// replayed is the reason of a replayed_trace flag given at the close
	// (replay detection judges a day once, when it closes; its revisions
	// keep the flag and its factor), "" when not flagged.
	replayed string
}

// ClosedKeyPrefix starts the changelog key of a kept closed day:
// "closed/<vehicle>/<date>" (a window's key has one '/', the meta records none).
const ClosedKeyPrefix = "closed/"

// closedVersion is the first byte of a kept closed day's changelog value.
const closedVersion = 1

// Revision is one new revision of a closed day: valid only during the
// callback that receives it.
type Revision struct {
	Closed
	Revision  int32 // 0 only for a day whose every event came after its close
	ReleaseMs int64 // the quarter hour after the task's closed-through mark: the ledger appends it once every watermark reached it
	LateAdded int64
}

// NewClosedDays keeps closed days for lateness after their window end.
func NewClosedDays(rules *Rules, lateness time.Duration) *ClosedDays {
	return &ClosedDays{rules: rules, lateness: lateness.Milliseconds(), days: map[string]*closedDay{},
		byEnd: map[int64][]string{}, dirty: map[string]struct{}{}, revised: map[string]struct{}{}}
}

// Len is the number of closed days kept.
func (c *ClosedDays) Len() int { return len(c.days) }

// Bytes is the size of the kept days' packed states (the bulk of their
// memory).
func (c *ClosedDays) Bytes() int { return c.bytes }

// Pending is the number of days holding late events not yet revised.
func (c *ClosedDays) Pending() int { return len(c.revised) }

// Keep stores a day that was just emitted at its close (revision 0). A day
// that already took late events while it waited for emission (ClosedDays.Add
// with its frozen state) is kept as it is.
func (c *ClosedDays) Keep(cl *Closed) {
	if _, ok := c.days[cl.ID]; ok {
		return
	}
	c.buf = cl.Day.AppendBinary(c.buf[:0])
	d := &closedDay{state: c.pack(c.buf), tz: cl.TZ, end: cl.Day.End, next: 1}
	if i := slices.Index(cl.Result.Flags, FlagReplay); i >= 0 && i < len(cl.Result.Reasons) {
		d.replayed = cl.Result.Reasons[i]
	}
	c.put(cl.ID, d)
}

func (c *ClosedDays) put(id string, d *closedDay) {
	c.bytes += len(d.state)
	c.days[id] = d
	c.byEnd[d.end] = append(c.byEnd[d.end], id)
	c.dirty[id] = struct{}{}
}

// TooLate reports whether an event of a day ending at windowEnd, found
// late with the task's closed-through mark at closedThrough, is past the
// lateness bound (it goes to the late topic).
func (c *ClosedDays) TooLate(l *Late) bool {
	return l.WindowEnd <= l.ClosedThrough-c.lateness
}

// Add folds a late event into its closed day, which it decodes from the
// kept state (or copies from frozen, the day closed but not yet emitted;
// or starts, if the vehicle had no event that day before the close). It
// returns false, changing nothing, for an event past the lateness bound.
func (c *ClosedDays) Add(ev *telemetry.Event, l *Late, frozen *Day) bool {
	if c.TooLate(l) {
		return false
	}
	id := ev.VehicleID + "/" + l.Date
	var day Day
	d := c.days[id]
	switch {
	case d != nil:
		if _, err := day.UnmarshalBinary(c.unpack(d)); err != nil {
			panic(fmt.Sprintf("scoring: kept day %s does not decode: %v", id, err)) // checked at Keep or Restore
		}
		if day.Start != l.WindowStart || day.End != l.WindowEnd {
			return false // a kept day cut in another zone than the event's: not this window
		}
	case frozen != nil:
		d = &closedDay{tz: l.TZ, end: l.WindowEnd, next: 1}
		if _, err := day.UnmarshalBinary(frozen.AppendBinary(nil)); err != nil { // a deep copy
			panic(fmt.Sprintf("scoring: frozen day %s does not decode: %v", id, err))
		}
		c.put(id, d)
	default:
		d = &closedDay{tz: l.TZ, end: l.WindowEnd, next: 0}
		day = NewDay(l.WindowStart, l.WindowEnd, l.NightEnd)
		c.put(id, d)
	}
	c.buf = day.Add(c.rules, ev, c.buf)
	c.bytes -= len(d.state)
	d.state = c.pack(day.AppendBinary(c.buf[:0]))
	c.bytes += len(d.state)
	d.lateAdded++
	d.pending = true
	c.revised[id] = struct{}{}
	c.dirty[id] = struct{}{}
	return true
}

// Revise emits one revision of every day that took late events since the
// last Revise, in score id order, with ReleaseMs the quarter hour after
// closedThrough. The stage calls it when a time mark was applied, so the
// events a revision holds depend only on the log's order.
func (c *ClosedDays) Revise(closedThrough int64, emit func(*Revision)) {
	if len(c.revised) == 0 {
		return
	}
	release := (closedThrough/metaStep + 1) * metaStep
	for _, id := range slices.Sorted(maps.Keys(c.revised)) {
		d := c.days[id]
		if d == nil || !d.pending {
			continue
		}
		var day Day
		if _, err := day.UnmarshalBinary(c.unpack(d)); err != nil {
			panic(fmt.Sprintf("scoring: kept day %s does not decode: %v", id, err))
		}
		vehicle, date, _ := strings.Cut(id, "/")
		res := day.Result(c.rules)
		if d.replayed != "" { // as Windows.judgeReplay did at the close
			res.Flags = append(res.Flags, FlagReplay)
			res.Reasons = append(res.Reasons, d.replayed)
			res.Points = int64(float64(res.Points) * FactorReplay)
		}
		emit(&Revision{Closed: Closed{ID: id, Vehicle: vehicle, Date: date, TZ: d.tz, Day: &day, Result: res},
			Revision: d.next, ReleaseMs: release, LateAdded: d.lateAdded})
		d.next++
		d.pending = false
		c.dirty[id] = struct{}{}
	}
	clear(c.revised)
}

// Expire forgets the days whose late events would now be too late: window
// end at or before closedThrough minus the lateness. A day still holding
// unrevised late events is kept until Revise took them.
func (c *ClosedDays) Expire(closedThrough int64) {
	limit := closedThrough - c.lateness
	for end, ids := range c.byEnd {
		if end > limit {
			continue
		}
		keep := ids[:0]
		for _, id := range ids {
			d := c.days[id]
			switch {
			case d == nil || d.end != end:
			case d.pending:
				keep = append(keep, id)
			default:
				c.bytes -= len(d.state)
				delete(c.days, id)
				c.dirty[id] = struct{}{}
			}
		}
		if len(keep) == 0 {
			delete(c.byEnd, end)
		} else {
			c.byEnd[end] = keep
		}
	}
}

// Flush calls put once for every day changed since the last Flush: key
// ClosedKeyPrefix + score id, value its encoding, or nil for a day
// forgotten.
func (c *ClosedDays) Flush(put func(key string, value []byte)) {
	for _, id := range slices.Sorted(maps.Keys(c.dirty)) {
		d := c.days[id]
		if d == nil {
			put(ClosedKeyPrefix+id, nil)
			continue
		}
		state := c.unpack(d)
		put(ClosedKeyPrefix+id, d.appendBinary(make([]byte, 0, len(state)+32), state))
	}
	clear(c.dirty)
}

// appendBinary: version byte 1, next revision (uvarint), pending (one
// byte), late events added (uvarint), the replayed_trace reason given at
// the close (uvarint length + bytes; empty: none), tz (uvarint length +
// bytes), then the Day (Day.AppendBinary, state); its window end is in the Day.
func (d *closedDay) appendBinary(b, state []byte) []byte {
	b = append(b, closedVersion)
	b = binary.AppendUvarint(b, uint64(d.next))
	if d.pending {
		b = append(b, 1)
	} else {
		b = append(b, 0)
	}
	b = binary.AppendUvarint(b, uint64(d.lateAdded))
	b = binary.AppendUvarint(b, uint64(len(d.replayed)))
	b = append(b, d.replayed...)
	b = binary.AppendUvarint(b, uint64(len(d.tz)))
	b = append(b, d.tz...)
	return append(b, state...)
}

// Restore applies one changelog record whose key starts with
// ClosedKeyPrefix (the prefix included).
func (c *ClosedDays) Restore(key string, value []byte) error {
	id, ok := strings.CutPrefix(key, ClosedKeyPrefix)
	vehicle, date, _ := strings.Cut(id, "/")
	if !ok || strings.Count(id, "/") != 1 || vehicle == "" || len(date) != len(time.DateOnly) {
		return fmt.Errorf("restore %s: not a closed day key", key)
	}
	if value == nil {
		if old := c.days[id]; old != nil {
			c.bytes -= len(old.state)
		}
		delete(c.days, id)
		delete(c.revised, id)
		return nil
	}
	bad := func(what string) error { return fmt.Errorf("restore %s: %s", key, what) }
	if len(value) < 1 || value[0] != closedVersion {
		return bad("unknown version")
	}
	b := value[1:]
	next, n := binary.Uvarint(b)
	if n <= 0 || next > 1<<30 || len(b) < n+1 || b[n] > 1 {
		return bad("truncated")
	}
	pending := b[n] == 1
	b = b[n+1:]
	late, n := binary.Uvarint(b)
	if n <= 0 {
		return bad("truncated")
	}
	replayed, rest, err := readString(b[n:])
	if err != nil {
		return bad("replay reason")
	}
	tz, rest, err := readString(rest)
	if err != nil {
		return bad("tz")
	}
	var day Day
	if tail, err := day.UnmarshalBinary(rest); err != nil || len(tail) != 0 {
		return bad(fmt.Sprint("day state: ", errors.Join(err, errIf(len(tail) != 0, "trailing bytes"))))
	}
	if n := day.End - day.Start; n < 22*3600*1000 || n > 26*3600*1000 {
		return bad(fmt.Sprintf("a day window of %d ms", n))
	}
	d := &closedDay{state: c.pack(rest), tz: tz, end: day.End, next: int32(next), lateAdded: int64(late), pending: pending, replayed: replayed}
	old := c.days[id]
	if old == nil || old.end != d.end {
		c.byEnd[d.end] = append(c.byEnd[d.end], id)
	}
	if old != nil {
		c.bytes -= len(old.state)
	}
	c.bytes += len(d.state)
	c.days[id] = d
	if pending {
		c.revised[id] = struct{}{}
	} else {
		delete(c.revised, id)
	}
	return nil
}

func errIf(cond bool, msg string) error {
	if cond {
		return errors.New(msg)
	}
	return nil
}

// Verdict outcomes of ClosedDays.Replayed.
const (
	VerdictApplied = iota // the day is now flagged: a revision follows at the next Revise
	VerdictAlready        // the day was already flagged replayed_trace: nothing changes
	VerdictNotKept        // no such day kept (never closed here, or past the lateness)
)

// Replayed applies a global replay check's verdict to the kept closed day
// id ("<vehicle>/<date>"): the day takes the replayed_trace flag with
// reason (points x FactorReplay) and owes a revision, like a day that took
// late events. A day already flagged (at its close or by an earlier
// verdict) changes nothing, so a verdict applied twice is a no-op.
func (c *ClosedDays) Replayed(id, reason string) int {
	d := c.days[id]
	switch {
	case d == nil:
		return VerdictNotKept
	case d.replayed != "":
		return VerdictAlready
	}
	d.replayed = reason
	d.pending = true
	c.revised[id] = struct{}{}
	c.dirty[id] = struct{}{}
	return VerdictApplied
}
