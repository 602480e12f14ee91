package scoring

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/telemetry"
)

// ErrTimeZone is returned by Windows.Add for an event whose time zone is not
// a known IANA name.
var ErrTimeZone = errors.New("unknown time zone")

// metaKey is the changelog key of a task's stream time and closed-through
// mark. Window keys always contain a '/', so it cannot collide.
const metaKey = "task"

// Windows holds one scoring task's open vehicle-days: event-time tumbling
// windows of one local calendar day per vehicle. Stream time is the largest
// event time seen, or, once SetLogClock is on, the log time given to
// Advance; a window closes when stream time passes its end plus the grace
// period. Windows
// close in end order, so one number, ClosedThrough, tells which events are
// late. It is pure (no I/O, no clock): the caller feeds events, ticks and
// changelog records, and gets closed days and state to persist.
type Windows struct {
	rules     *Rules
	defaultTZ string
	grace     int64

	zones    map[string]*zone
	zoneList []*zone

	slots   [][]slot // chunks of slabChunk: no doubling copies, no 2x capacity
	n       int32    // slots handed out
	free    []int32
	index   dayIndex                  // (vehicle, start) -> slot
	arena   arena                     // the cold slots' records: vehicle id, then the packed day
	hot     []hotDay                  // the decoded days (a hot slot's ref indexes it)
	days    []dayInfo                 // the windows slots point to (slot.day >> slotFlagBits)
	dayIDs  map[dayKey]uint32         // (zone, start, end) -> index in days
	traces  map[int32]*replay.Builder // slot -> the day's replay trace (replay detection on)
	nextEnd int64                     // smallest end of an open, not closed window (MaxInt64 when none)
	touched []int32
	pending []int32 // closed windows waiting to be emitted, in (end, vehicle) order
	head    int     // pending[:head] were emitted

	stream, closed int64
	markClock      bool // stream time moves only by Advance (log time), not by event time
	metaDirty      bool
	restoring      map[string]int32 // changelog key -> slot, only while restoring
	replay         *replayState     // nil: replay detection off (EnableReplay)

	last lastSlot // the slot of the last event (slot -1: none)

	buf  []byte
	pack []byte   // scratch of cool and thaw
	cbuf coldBufs // scratch of cool
	rec  []byte   // scratch of cool
	qbuf []byte   // scratch of lookup

	compactions int // arena compactions (tests)
}

// A slot is one open vehicle-day, 8 bytes with no pointer: its window
// (start, end, zone, night end, date) is an entry of Windows.days shared
// by every slot of that window. While the day is cold, ref names its one
// arena record: the vehicle id's encoding (appendID), then the packed
// day (the cold layout of coldcodec.go, packZeros); ids are packed 6 bits
// a character when they can be (idpack.go). While it is hot
// (decoded: from its first event after a Flush to the next Flush, or
// from Frozen or Drain to its drop), ref is its index in Windows.hot,
// which holds the vehicle id and the Day. Flush packs a hot day and drops
// the struct, so a day that waits for its close costs its packed bytes,
// not the Day and its 440-byte segs (docs/scale.md, "Scoring memory").
// The packing is exact: a thawed day is the day that was packed.
type slot struct {
	day uint32 // flags (low slotFlagBits bits) | index in Windows.days << slotFlagBits
	ref uint32 // cold: arena record (vehicle id, packed day); hot: index in Windows.hot
}

const (
	slotUsed    = 1 << iota
	slotTouched // changed since the last Flush (in Windows.touched)
	slotHot     // decoded: the record holds an index in Windows.hot
	slotClosed  // closed: in Windows.pending

	slotFlagBits = 4
	slotFlags    = 1<<slotFlagBits - 1
)

// A dayInfo is one window of one zone (the local calendar day [start,
// end)), shared by the slots of every vehicle in it. Entries are never
// removed: a task adds one per zone and day it sees (and one per restored
// window whose end the zone no longer gives it).
type dayInfo struct {
	start, end int64
	night      uint32 // the night end the zone gives the day (the cold layout's prediction of Day.NightEnd)
	zone       uint16
	date       string
}

type dayKey struct {
	start, end int64
	zone       uint16
}

func (s *slot) flags() uint32 { return s.day & slotFlags }

func (w *Windows) info(s *slot) *dayInfo { return &w.days[s.day>>slotFlagBits] }

func (w *Windows) start(s *slot) int64 { return w.days[s.day>>slotFlagBits].start }

func (w *Windows) end(s *slot) int64 { return w.days[s.day>>slotFlagBits].end }

// dayID returns the index in w.days of zone's window [start, end), adding
// it (with the night end and date given) if it is new.
func (w *Windows) dayID(zone uint16, start, end int64, night uint32, date string) uint32 {
	k := dayKey{start: start, end: end, zone: zone}
	if id, ok := w.dayIDs[k]; ok {
		return id
	}
	if len(w.days) >= 1<<(32-slotFlagBits) {
		panic("scoring: too many windows in the day table")
	}
	id := uint32(len(w.days))
	w.days = append(w.days, dayInfo{start: start, end: end, night: night, zone: zone, date: date})
	w.dayIDs[k] = id
	return id
}

// windowID is dayID for a window given by its bounds alone (Restore,
// tests): its night end and date are those of the zone's day holding
// start.
func (w *Windows) windowID(zone uint16, start, end int64) uint32 {
	if id, ok := w.dayIDs[dayKey{start: start, end: end, zone: zone}]; ok {
		return id
	}
	z := w.zoneList[zone]
	zd := w.day(z, start)
	date := zd.date
	if zd.start != start {
		date = time.UnixMilli(start).In(z.loc).Format(time.DateOnly)
	}
	return w.dayID(zone, start, end, zd.night, date)
}

type lastSlot struct {
	vehicle string
	start   int64
	slot    int32
}

type hotDay struct {
	slot int32
	name string // the vehicle id
	key  []byte // its encoding (appendID)
	day  *Day
}

type zone struct {
	name string
	loc  *time.Location
	idx  uint16
	days [2]zoneDay // two most recent days computed (today and, in grace, yesterday)
}

type zoneDay struct {
	start, end int64
	night      uint32
	id         uint32 // index in Windows.days
	date       string
}

// Closed is a window that closed: its day and result are valid only during
// the callback that receives it.
type Closed struct {
	ID      string // "<vehicle>/<yyyy-mm-dd>"
	Vehicle string
	Date    string
	TZ      string
	Day     *Day
	Result  Result
	// Trips are the day's trip fingerprints (replay detection on; nil
	// otherwise), valid only during the callback: the stage publishes
	// them for the global replay check.
	Trips []replay.Fingerprint
}

// NewWindows makes an empty window set. defaultTZ is used for events with
// an empty TZ; grace is how long after its end a day stays open.
func NewWindows(rules *Rules, defaultTZ string, grace time.Duration) (*Windows, error) {
	w := &Windows{
		rules:   rules,
		grace:   grace.Milliseconds(),
		zones:   map[string]*zone{},
		index:   dayIndex{seed: maphash.MakeSeed()},
		dayIDs:  map[dayKey]uint32{},
		last:    lastSlot{slot: -1},
		nextEnd: maxInt64,
	}
	if _, err := w.zone(defaultTZ); err != nil {
		return nil, fmt.Errorf("default time zone: %w", err)
	}
	w.defaultTZ = defaultTZ
	return w, nil
}

const maxInt64 = int64(^uint64(0) >> 1)

// Open is the number of open windows.
func (w *Windows) Open() int { return w.index.n }

// StreamTime is the largest event time seen (or set by Advance), Unix ms.
func (w *Windows) StreamTime() int64 { return w.stream }

// ClosedThrough is the task's mark: every window ending at or before it has
// been closed (0 before the first close).
func (w *Windows) ClosedThrough() int64 { return w.closed }

func (w *Windows) zone(name string) (*zone, error) {
	if z, ok := w.zones[name]; ok {
		if z == nil {
			return nil, fmt.Errorf("%w %q", ErrTimeZone, name)
		}
		return z, nil
	}
	loc, err := time.LoadLocation(name)
	if err != nil || name == "" || strings.EqualFold(name, "local") {
		if len(w.zones) < 4096 {
			w.zones[name] = nil
		}
		return nil, fmt.Errorf("%w %q", ErrTimeZone, name)
	}
	if len(w.zoneList) >= 1<<16 {
		return nil, fmt.Errorf("%w %q: too many zones", ErrTimeZone, name)
	}
	z := &zone{name: name, loc: loc, idx: uint16(len(w.zoneList))}
	w.zones[name] = z
	w.zoneList = append(w.zoneList, z)
	return z, nil
}

// day returns the local calendar day holding t (Unix ms) in z.
func (w *Windows) day(z *zone, t int64) *zoneDay {
	for i := range z.days {
		if d := &z.days[i]; t >= d.start && t < d.end {
			return d
		}
	}
	lt := time.UnixMilli(t).In(z.loc)
	y, m, dd := lt.Date()
	start := time.Date(y, m, dd, 0, 0, 0, 0, z.loc)
	nd := zoneDay{
		start: start.UnixMilli(),
		end:   time.Date(y, m, dd+1, 0, 0, 0, 0, z.loc).UnixMilli(),
		night: uint32(time.Date(y, m, dd, w.rules.NightEndHour, 0, 0, 0, z.loc).UnixMilli() - start.UnixMilli()),
		date:  start.Format(time.DateOnly),
	}
	nd.id = w.dayID(z.idx, nd.start, nd.end, nd.night, nd.date)
	// Keep the later day in slot 0, the earlier in slot 1.
	if nd.start >= z.days[0].start {
		z.days[1], z.days[0] = z.days[0], nd
		return &z.days[0]
	}
	z.days[1] = nd
	return &z.days[1]
}

// Late describes an event whose window had already closed.
type Late struct {
	WindowEnd     int64
	ClosedThrough int64
	Date          string
	WindowStart   int64  // the day's window start (ClosedDays.Add re-scores it)
	NightEnd      uint32 // ms after WindowStart where night driving ends
	TZ            string // the zone the day was cut in
}

// Add places one event. It first advances stream time to the event's time,
// closing every window ending at or before stream time minus grace (and
// emitting them through closed in (end, vehicle) order, or, with closed
// nil, queueing them for Drain); then it adds the event to its window. An
// event whose window had closed is returned as late and changes nothing.
// The only error is ErrTimeZone (bad input).
func (w *Windows) Add(ev *telemetry.Event, closed func(Closed)) (*Late, error) {
	return w.AddRef(ev, nil, closed)
}

// AddRef is Add for an event ingest marked with the odometer reading it
// contradicts (Day.AddRef; nil: not marked).
func (w *Windows) AddRef(ev *telemetry.Event, ref *OdoRef, closed func(Closed)) (*Late, error) {
	w.endRestore()
	name := ev.TZ
	if name == "" {
		name = w.defaultTZ
	}
	z, err := w.zone(name)
	if err != nil {
		return nil, err
	}
	zd := w.day(z, ev.TimeMs)
	if zd.end <= w.closed {
		return &Late{WindowEnd: zd.end, ClosedThrough: w.closed, Date: zd.date, WindowStart: zd.start, NightEnd: zd.night, TZ: z.name}, nil
	}
	start, end, night, id := zd.start, zd.end, zd.night, zd.id // zd may move when closing computes days
	if ev.TimeMs > w.stream && !w.markClock {
		w.advance(ev.TimeMs, closed)
	}
	// A box uploads its events in batches, so a partition's records come
	// in runs of one vehicle: the last slot found is tried first.
	i, cached := w.last.slot, true
	if i < 0 || w.last.start != start || w.last.vehicle != ev.VehicleID {
		if i = w.lookup(ev.VehicleID, start); i < 0 {
			d := NewDay(start, end, night)
			i = w.openID(ev.VehicleID, id, &d)
		}
		cached = false
	}
	day := w.thaw(i)
	if !cached { // the hot day's own copy of the id, not the event's string
		w.last = lastSlot{vehicle: w.hot[w.slot(i).ref].name, start: start, slot: i}
	}
	w.buf = day.AddRef(w.rules, ev, ref, w.buf)
	w.trace(i, day, ev)
	if s := w.slot(i); s.flags()&slotTouched == 0 {
		s.day |= slotTouched
		w.touched = append(w.touched, i)
	}
	return nil, nil
}

// open files a new window [start, end) of zone holding d (hot) and returns
// its slot.
func (w *Windows) open(vehicle string, start, end int64, zone uint16, d *Day) int32 {
	return w.openID(vehicle, w.windowID(zone, start, end), d)
}

// openID is open for the window w.days[id].
func (w *Windows) openID(vehicle string, id uint32, d *Day) int32 {
	i := w.alloc()
	s := w.slot(i)
	*s = slot{day: id<<slotFlagBits | slotUsed | slotHot, ref: uint32(len(w.hot))}
	w.hot = append(w.hot, hotDay{slot: i, name: strings.Clone(vehicle), key: appendID(nil, vehicle), day: d})
	w.indexAdd(i)
	w.nextEnd = min(w.nextEnd, w.days[id].end)
	return i
}

// vehicle returns a slot's vehicle id.
func (w *Windows) vehicle(s *slot) string {
	if s.flags()&slotHot != 0 {
		return w.hot[s.ref].name
	}
	return idText(w.key(s))
}

// Frozen returns the day of vehicle's window starting at start if it is
// closed but not yet drained (nil otherwise). The caller must not change
// it: ClosedDays copies it to re-score the day with late events.
func (w *Windows) Frozen(vehicle string, start int64) *Day {
	w.endRestore()
	if i := w.lookup(vehicle, start); i >= 0 {
		if s := w.slot(i); w.end(s) <= w.closed {
			return w.thaw(i)
		}
	}
	return nil
}

// SetLogClock switches stream time to the log clock: from then on Add no
// longer advances it (an event's time closes nothing), only Advance does,
// with the task's log time (LogClock). The stage switches a task once its
// first time mark arrives (docs/scoring.md, "Log time").
func (w *Windows) SetLogClock(on bool) { w.markClock = on }

// Advance moves stream time to now (Unix ms) if it is ahead, closing what
// that closes. The stage calls it with the task's log time (and, when the
// idle fallback is on, with the wall clock).
func (w *Windows) Advance(now int64, closed func(Closed)) {
	w.endRestore()
	if now > w.stream {
		w.advance(now, closed)
	}
}

// metaStep is the granularity at which stream time and closed-through are
// written to the changelog. Window ends fall on quarter hours (every zone
// offset is a multiple of 15 minutes), so values restored from within the
// same quarter hour close the same windows and find the same events late
// as the exact ones; an idle task, whose stream time follows the wall
// clock, then writes its meta record four times an hour, not every tick.
const metaStep = int64(15 * time.Minute / time.Millisecond)

func (w *Windows) advance(t int64, closed func(Closed)) {
	if t/metaStep != w.stream/metaStep {
		w.metaDirty = true
	}
	w.stream = t
	limit := t - w.grace
	if limit <= w.closed {
		return
	}
	if limit/metaStep != w.closed/metaStep {
		w.metaDirty = true
	}
	if limit >= w.nextEnd {
		w.metaDirty = true // windows close: restore must find them closed
		w.closeThrough(limit)
	}
	w.closed = limit
	if closed != nil {
		w.Drain(-1, closed)
	}
}

// closeThrough closes every open window ending at or before limit: one
// pass over the slots (windows end on quarter hours, so at most ~100
// passes a day, each a scan of 8-byte slots and the day table; no list per window end to
// keep), which also finds the next end.
func (w *Windows) closeThrough(limit int64) {
	var idx []int32
	w.nextEnd = maxInt64
	for i := range w.n {
		s := w.slot(i)
		if s.flags()&(slotUsed|slotClosed) != slotUsed {
			continue
		}
		if e := w.end(s); e <= limit {
			idx = append(idx, i)
		} else {
			w.nextEnd = min(w.nextEnd, e)
		}
	}
	w.freeze(idx)
}

// freeze queues windows for emission, in (end, vehicle) order. From
// here on they are closed: events for them are late. Only their emission
// may wait (Drain), so a midnight with a million windows is spread over
// several transactions without changing any result.
func (w *Windows) freeze(idx []int32) {
	slices.SortFunc(idx, func(a, b int32) int {
		sa, sb := w.slot(a), w.slot(b)
		if c := cmp.Compare(w.end(sa), w.end(sb)); c != 0 {
			return c
		}
		return compareIDs(w.key(sa), w.key(sb))
	})
	for _, i := range idx {
		w.slot(i).day |= slotClosed
	}
	w.pending = append(w.pending, idx...)
}

// Pending is the number of closed windows not yet drained.
func (w *Windows) Pending() int {
	w.endRestore()
	return len(w.pending) - w.head
}

// Drain emits up to max (negative: all) closed windows through closed, in
// (end, vehicle) order, and forgets them. It returns how many it emitted.
func (w *Windows) Drain(max int, closed func(Closed)) int {
	w.endRestore()
	n := 0
	for w.head < len(w.pending) && (max < 0 || n < max) {
		i := w.pending[w.head]
		w.head++
		n++
		s := w.slot(i)
		info := w.info(s)
		z, date := w.zoneList[info.zone], info.date
		day := w.thaw(i)
		vehicle := w.vehicle(s)
		res := day.Result(w.rules)
		trips := w.judgeReplay(i, vehicle, date, &res)
		closed(Closed{
			Trips:   trips,
			ID:      vehicle + "/" + date,
			Vehicle: vehicle,
			Date:    date,
			TZ:      z.name,
			Day:     day,
			Result:  res,
		})
		w.drop(i)
	}
	if w.head == len(w.pending) {
		w.pending, w.head = shrink(w.pending[:0]), 0
	}
	return n
}

// EmittedThrough is the watermark: every window ending at or before it
// has been drained. It trails ClosedThrough while windows wait in Drain.
func (w *Windows) EmittedThrough() int64 {
	w.endRestore()
	if w.head < len(w.pending) {
		return min(w.closed, w.end(w.slot(w.pending[w.head]))-1)
	}
	return w.closed
}

func (w *Windows) dateOf(s *slot) string { return w.info(s).date }

const slabChunk = 4096

func (w *Windows) slot(i int32) *slot { return &w.slots[i/slabChunk][i%slabChunk] }

func (w *Windows) alloc() int32 {
	if n := len(w.free); n > 0 {
		i := w.free[n-1]
		w.free = w.free[:n-1]
		return i
	}
	if w.n%slabChunk == 0 {
		w.slots = append(w.slots, make([]slot, slabChunk))
	}
	w.n++
	return w.n - 1
}

// Flush calls put once for every window changed since the last Flush (key
// "<vehicle>/<date>", value its state encoding) and once for the task's
// meta record when stream time moved. Closed windows were already written
// as tombstones by the caller of Add/Advance.
func (w *Windows) Flush(put func(key string, value []byte)) {
	w.endRestore()
	for _, i := range w.touched {
		s := w.slot(i)
		if s.flags()&(slotUsed|slotTouched) != slotUsed|slotTouched {
			continue
		}
		s.day &^= slotTouched
		put(w.vehicle(s)+"/"+w.dateOf(s), w.encodeSlot(i))
		w.cool(i)
	}
	w.touched = shrink(w.touched[:0])
	w.hot = shrink(w.hot)
	if w.arena.dead > w.arena.live/16 && w.arena.dead > compactMin {
		w.compact()
	}
	w.flushReplay(put)
	if w.metaDirty {
		w.metaDirty = false
		put(metaKey, w.encodeMeta())
	}
}

// shrink gives back a scratch slice's memory once a burst (a midnight, a
// restore) has passed.
func shrink[T any](x []T) []T {
	if cap(x) > 1024 && len(x) < cap(x)/4 {
		return append(make([]T, 0, 2*len(x)), x...)
	}
	return x
}

// compactMin is the dead arena bytes below which Flush never compacts (a
// variable for tests).
var compactMin = arenaChunk

// compact frees dead arena bytes until at most 1/64 of the live ones are
// left (Flush calls it past 1/16): it picks the chunks with the most dead
// bytes, finds the slots whose records they hold in one scan, moves those
// records to new chunks and releases each picked chunk as soon as it is
// empty, so the arena never holds more than one chunk beyond what it
// keeps. Each compaction frees at least 3/64 of the live bytes, and the
// chunks picked are at least as dead as the average (above 1/17), so it
// copies at most 16 bytes per byte it frees: a task whose days take
// events in many transactions spends about that in memmove (a cool writes
// a ~100-byte record), and one scan of the 8-byte slots per compaction.
func (w *Windows) compact() {
	w.compactions++
	a := &w.arena
	type cand struct{ k, dead int }
	var cands []cand
	for k, c := range a.chunks {
		if d := len(c) - a.chunkLive[k]; c != nil && d > 0 {
			cands = append(cands, cand{k, d})
		}
	}
	slices.SortFunc(cands, func(x, y cand) int { return cmp.Compare(y.dead, x.dead) })
	picked := make([]bool, len(a.chunks))
	var order []int
	for freed, target := 0, a.dead-a.live/64; freed < target && len(order) < len(cands); {
		c := cands[len(order)]
		picked[c.k], order, freed = true, append(order, c.k), freed+c.dead
	}
	moves := make([][]int32, len(a.chunks)) // picked chunk -> the slots whose records it holds
	for i := range w.n {
		if s := w.slot(i); s.flags()&(slotUsed|slotHot) == slotUsed && picked[s.ref>>arenaBits] {
			moves[s.ref>>arenaBits] = append(moves[s.ref>>arenaBits], i)
		}
	}
	a.next = 0 // moved records go to new chunks, never to a picked one
	for _, k := range order {
		for _, i := range moves[k] {
			s := w.slot(i)
			s.ref = a.put(a.get(s.ref))
		}
		moves[k] = nil
		a.release(k)
	}
}

// stateVersion 2: Day as segment summaries (Day.AppendBinary). A version 1
// window record (the earlier single running summary) is refused and counted
// as a restore error; the meta record keeps its layout under either byte.
const stateVersion = 2

// encodeSlot returns a hot slot's changelog value.
func (w *Windows) encodeSlot(i int32) []byte {
	s := w.slot(i)
	z := w.zoneList[w.info(s).zone]
	day := w.hot[s.ref].day
	vehicle := w.hot[s.ref].name
	b := make([]byte, 0, dayFixedSize+8+len(z.name)+len(day.Device)+len(vehicle))
	b = append(b, stateVersion)
	b = day.AppendBinary(b)
	b = binary.AppendUvarint(b, uint64(len(z.name)))
	b = append(b, z.name...)
	b = binary.AppendUvarint(b, uint64(len(vehicle)))
	b = append(b, vehicle...)
	if tr := w.traces[i]; tr != nil { // optional tail: the replay Builder (records without it restore as before)
		b = tr.AppendBinary(b)
	}
	return b
}

func (w *Windows) encodeMeta() []byte {
	b := make([]byte, 0, 17)
	b = append(b, stateVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(w.stream))
	return binary.BigEndian.AppendUint64(b, uint64(w.closed))
}

// Restore applies one changelog record (replayed from the start of the
// task's changelog partition before any Add): a window's state, a window's
// tombstone, or the task's meta record.
func (w *Windows) Restore(key string, value []byte) error {
	if w.restoring == nil {
		w.restoring = map[string]int32{}
	}
	if key == metaKey {
		if value == nil {
			return nil
		}
		if len(value) != 17 || (value[0] != stateVersion && value[0] != 1) {
			return fmt.Errorf("restore %s: bad meta record (%d bytes)", key, len(value))
		}
		w.stream = int64(binary.BigEndian.Uint64(value[1:]))
		w.closed = int64(binary.BigEndian.Uint64(value[9:]))
		return nil
	}
	if strings.HasPrefix(key, fpKeyPrefix) {
		return w.restoreReplay(key, value)
	}
	if strings.HasPrefix(key, endKeyPrefix) {
		return w.restoreEnd(key, value)
	}
	if i, ok := w.restoring[key]; ok {
		w.drop(i)
		delete(w.restoring, key)
	}
	if value == nil {
		return nil
	}
	if len(value) < 1 || value[0] != stateVersion {
		return fmt.Errorf("restore %s: unknown state version", key)
	}
	var d Day
	rest, err := d.UnmarshalBinary(value[1:])
	if err != nil {
		return fmt.Errorf("restore %s: %w", key, err)
	}
	if uint64(d.End-d.Start) > math.MaxUint32 { // a Day keeps times in ms after Start in 32 bits (a day is ~24 h)
		return fmt.Errorf("restore %s: window of %d ms", key, d.End-d.Start)
	}
	name, rest, err := readString(rest)
	if err != nil {
		return fmt.Errorf("restore %s: tz: %w", key, err)
	}
	vehicle, rest, err := readString(rest)
	if err != nil {
		return fmt.Errorf("restore %s: vehicle: bad encoding", key)
	}
	var trace *replay.Builder
	if len(rest) != 0 {
		if trace, rest, err = replay.DecodeBuilder(rest); err != nil || len(rest) != 0 || trace.Base != d.Start {
			return fmt.Errorf("restore %s: replay trace: bad encoding (%v)", key, err)
		}
	}
	z, err := w.zone(name)
	if err != nil {
		return fmt.Errorf("restore %s: %w", key, err)
	}
	if i := w.lookup(vehicle, d.Start); i >= 0 { // the same day under another key
		delete(w.restoring, w.vehicle(w.slot(i))+"/"+w.dateOf(w.slot(i)))
		w.drop(i)
	}
	i := w.open(vehicle, d.Start, d.End, z.idx, &d)
	if trace != nil {
		w.setTrace(i, trace)
	}
	w.cool(i)
	w.restoring[key] = i
	return nil
}

// drop forgets a slot: its index entry, its records, its trace.
func (w *Windows) drop(i int32) {
	s := w.slot(i)
	w.indexDel(i)
	if s.flags()&slotHot != 0 {
		w.unhot(s)
	} else {
		w.arena.free(s.ref)
	}
	delete(w.traces, i)
	if w.last.slot == i {
		w.last = lastSlot{slot: -1}
	}
	*s = slot{}
	w.free = append(w.free, i)
}

// endRestore ends a restore: it forgets the restore index and files the
// restored windows by end (kept out of Restore so that a window rewritten
// many times in the changelog costs O(1) per record).
func (w *Windows) endRestore() {
	if w.restoring == nil {
		return
	}
	w.restoring = nil
	w.pending, w.head = w.pending[:0], 0
	for i := range w.n { // closed before the restart, not yet drained: closeThrough finds them again
		w.slot(i).day &^= slotClosed
	}
	w.closeThrough(w.closed)
}

func readString(b []byte) (string, []byte, error) {
	n, k := binary.Uvarint(b)
	if k <= 0 || uint64(len(b)-k) < n {
		return "", nil, errors.New("truncated string")
	}
	return string(b[k : k+int(n)]), b[k+int(n):], nil
}
