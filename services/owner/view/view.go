// Package view is the owner API's serving tier: an in-memory view of the
// recent telemetry and daily scores of every vehicle, so that hot owner
// reads (a vehicle's position, a recent day's track, the 30-day report) do
// not touch ClickHouse. It is domain code: the owner API feeds it decoded
// events and scores (services/owner, Feed) and reads it; it knows nothing
// of Kafka.
//
// Per vehicle it keeps:
//
//   - the latest event (Position), by (time, device, seq), kept as long as
//     the vehicle is;
//   - the track of each UTC day of the window (Config.LateDays days before
//     today, plus today: the days late data can still change), as a
//     delta-encoded byte stream of fixed-point points (track.go);
//   - the daily scores of the last Config.ReportDays dates, the latest
//     version of each date (highest offset of the scores topic).
//
// What the view covers is decided per request (Track, Scores): the feeds
// must have caught up (MarkCaught) and the range must lie within the kept
// window and after the first data the topics still held (SetTelemetryFrom,
// SetScoresFrom). Outside that, the caller asks ClickHouse.
//
// A View is safe for concurrent use: one writer (the feeds) and many
// readers.
package view

import (
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a View.
type Config struct {
	// LateDays is how many days before today a day's track is kept
	// (default 7, scoring's lateness window): tracks of days
	// [today-LateDays, today] (UTC) are kept. Negative: today only.
	LateDays int
	// ReportDays is how many dates of scores are kept, today included
	// (default 31: the owner's default 30-day report ends today).
	ReportDays int
	// MaxPointsPerDay caps the points kept of one vehicle-day (default
	// 20,000, one every 4.3 s for 24 h); a day past it is dropped and
	// answered by ClickHouse (bounded memory: at most about 16 bytes a
	// point, docs/owner-api.md).
	MaxPointsPerDay int
}

func (c *Config) defaults() {
	switch {
	case c.LateDays == 0:
		c.LateDays = 7
	case c.LateDays < 0:
		c.LateDays = 0 // today only
	}
	if c.ReportDays <= 0 {
		c.ReportDays = 31
	}
	if c.MaxPointsPerDay <= 0 {
		c.MaxPointsPerDay = 20_000
	}
}

const dayMs = 24 * 60 * 60 * 1000

// Day is a UTC day number: days since 1970-01-01.
func Day(ms int64) int32 {
	d := ms / dayMs
	if ms < 0 && ms%dayMs != 0 {
		d--
	}
	return int32(d)
}

// Event is one telemetry event as the view keeps it: the values the
// telemetry table holds (services/sink: positions in integer
// micro-degrees, speeds and headings as float32, the odometer in meters,
// HDOP NULL when the box did not report it).
type Event struct {
	Vehicle, Device string
	Seq             uint64
	TimeMs          int64
	LatE6, LonE6    int32
	HDOP            float32
	HasHDOP         bool // false: unknown (NULL)
	SpeedKmh        float32
	HeadingDeg      float32
	OdometerM       uint64
	EngineOn        bool
}

// Position is a vehicle's latest event.
type Position struct {
	TimeMs     int64
	Device     string
	Seq        uint64
	LatE6      int32
	LonE6      int32
	HDOP       float32
	HasHDOP    bool // false: unknown (NULL)
	SpeedKmh   float32
	HeadingDeg float32
	OdometerM  uint64
	EngineOn   bool
}

// Score is one vehicle-day's daily score as the daily_scores table holds
// it (services/sink's conversions: counts as uint32, late events clamped
// at 0, times in milliseconds).
type Score struct {
	Date              int32 // UTC day number of the score's date
	Offset            int64 // of the scores topic: the latest version wins
	ID                string
	Device, TZ        string
	WindowStartMs     int64
	WindowEndMs       int64
	ConfigVersion     string
	DistanceKm        float64
	GPSKm             float64
	OdometerKm        float64
	DrivingS          uint32
	HarshBrake        uint32
	HarshAccel        uint32
	HarshCorner       uint32
	SpeedingS         uint32
	NightS            uint32
	FatigueEvents     uint32
	GPSJumps          uint32
	OdometerRollbacks uint32
	Events            uint64
	LateEvents        uint64
	HasLateEvents     bool
	HDOPRejected      uint64
	Score             float32
	Points            int64
	Flags             []string // nil when none
	FlagReasons       []string
	Revision          uint32 // the latest revision wins, then the latest offset
	LateAdded         uint64 // events added after the day closed
}

type vehicle struct {
	pos    Position
	hasPos bool
	dev    []string // devices of the vehicle's kept points (index in the point stream)
	days   []*dayTrack
	scores []Score // by date
}

// View is the in-memory owner view.
type View struct {
	cfg Config

	mu       sync.RWMutex
	vehicles map[string]*vehicle
	strs     map[string]string // interned device ids, time zones, config versions
	today    int32             // the newest day seen by Trim or an event's day bound
	stats    Stats

	telemetryCaught, scoresCaught atomic.Bool
	erasuresCaught                atomic.Bool      // the erasure requests read (Forget) to the end they had at start
	erased                        map[string]int64 // vehicle -> erasure time (ms): events before it are not kept
	telemetryFrom, scoresFrom     atomic.Int64     // ms: data before it may be missing (topic retention)
}

// Stats are the view's sizes.
type Stats struct {
	Vehicles  int
	Days      int   // vehicle-days of track kept
	Points    int64 // points in them
	TrackB    int64 // bytes of encoded points (capacity)
	Scores    int   // daily scores kept
	Overflows int64 // vehicle-days dropped for MaxPointsPerDay
	Dropped   int64 // events older than the window when they arrived (not kept)
}

// Bytes is an estimate of the view's heap: encoded points, plus fixed
// sizes per vehicle, day and score (their structs and map entries).
func (s Stats) Bytes() int64 {
	return s.TrackB + int64(s.Vehicles)*vehicleBytes + int64(s.Days)*dayBytes + int64(s.Scores)*scoreBytes
}

// Fixed costs, measured by TestMemoryFigures (struct sizes plus map and
// slice overhead, rounded up).
const (
	vehicleBytes = 320
	dayBytes     = 112
	scoreBytes   = 240
)

// New returns an empty view.
func New(cfg Config) *View {
	cfg.defaults()
	return &View{cfg: cfg, vehicles: map[string]*vehicle{}, strs: map[string]string{}, today: -1 << 31}
}

// Config returns the view's configuration with defaults applied.
func (v *View) Config() Config { return v.cfg }

// MarkCaught records that a feed has read its topic to the end it had
// when the view started (telemetry: the clean topic; else the scores).
func (v *View) MarkCaught(telemetry bool) {
	if telemetry {
		v.telemetryCaught.Store(true)
	} else {
		v.scoresCaught.Store(true)
	}
}

// Caught reports whether both feeds have caught up.
func (v *View) Caught() bool {
	return v.telemetryCaught.Load() && v.scoresCaught.Load() && v.erasuresCaught.Load()
}

// MarkErasuresCaught records that the erasure feed has read the ledger's
// requests to the end they had when the view started: until then the
// view answers nothing (an erased vehicle's data may still be in it).
func (v *View) MarkErasuresCaught() { v.erasuresCaught.Store(true) }

// Forget drops everything the view holds of vehicle (an owner's erasure,
// `minecart accounts erase`) and keeps no event of it timed before
// beforeMs from then on: the clean telemetry topic still holds them until
// its retention, and a restarted view reads it again.
func (v *View) Forget(vehicle string, beforeMs int64) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.erased == nil {
		v.erased = map[string]int64{}
	}
	v.erased[vehicle] = max(v.erased[vehicle], beforeMs)
	x := v.vehicles[vehicle]
	if x == nil {
		return
	}
	for _, d := range x.days {
		v.stats.Points -= int64(d.n)
		v.stats.TrackB -= int64(cap(d.buf))
	}
	v.stats.Days -= len(x.days)
	v.stats.Scores -= len(x.scores)
	v.stats.Vehicles--
	delete(v.vehicles, vehicle)
}

// SetTelemetryFrom records that telemetry of event time before ms may be
// missing from the topic (its log start moved past offset 0: records
// written before ms were deleted). Tracks before it are not covered.
func (v *View) SetTelemetryFrom(ms int64) { setMax(&v.telemetryFrom, ms) }

// SetScoresFrom is SetTelemetryFrom for the scores topic: reports of
// dates before ms are not covered.
func (v *View) SetScoresFrom(ms int64) { setMax(&v.scoresFrom, ms) }

func setMax(a *atomic.Int64, ms int64) {
	for {
		old := a.Load()
		if ms <= old || a.CompareAndSwap(old, ms) {
			return
		}
	}
}

func (v *View) intern(s string) string {
	if i, ok := v.strs[s]; ok {
		return i
	}
	if len(v.strs) < 1<<16 {
		v.strs[s] = s
	}
	return s
}

func (v *View) vehicle(id string) *vehicle {
	x := v.vehicles[id]
	if x == nil {
		x = &vehicle{}
		v.vehicles[id] = x
		v.stats.Vehicles++
	}
	return x
}

// AddEvent applies one telemetry event, in the order of the topic. now
// is the wall clock: an event of a day before the window is only counted
// in the position.
func (v *View) AddEvent(e Event, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.advance(Day(now.UnixMilli()))
	if at, ok := v.erased[e.Vehicle]; ok && e.TimeMs < at {
		return
	}
	x := v.vehicle(e.Vehicle)
	k := key{e.TimeMs, e.Device, e.Seq}
	if !x.hasPos || !k.less(key{x.pos.TimeMs, x.pos.Device, x.pos.Seq}) {
		// The latest by (time, device, seq); an equal key replaces it
		// (ReplacingMergeTree keeps the last row inserted).
		x.pos = Position{TimeMs: e.TimeMs, Device: v.intern(e.Device), Seq: e.Seq, LatE6: e.LatE6, LonE6: e.LonE6, HDOP: e.HDOP, HasHDOP: e.HasHDOP,
			SpeedKmh: e.SpeedKmh, HeadingDeg: e.HeadingDeg, OdometerM: e.OdometerM, EngineOn: e.EngineOn}
		x.hasPos = true
	}
	d := Day(e.TimeMs)
	if d < v.firstDay() {
		v.stats.Dropped++
		return
	}
	i, found := slices.BinarySearchFunc(x.days, d, func(t *dayTrack, d int32) int { return int(t.day - d) })
	if !found {
		x.days = slices.Insert(x.days, i, &dayTrack{day: d, sorted: true})
		v.stats.Days++
	}
	t := x.days[i]
	if t.overflow {
		return
	}
	if int(t.n) >= v.cfg.MaxPointsPerDay {
		v.stats.Points -= int64(t.n)
		v.stats.TrackB -= int64(cap(t.buf))
		v.stats.Overflows++
		t.buf, t.n, t.overflow = nil, 0, true
		return
	}
	dev := slices.Index(x.dev, e.Device)
	if dev < 0 {
		dev = len(x.dev)
		x.dev = append(x.dev, v.intern(e.Device))
	}
	before := cap(t.buf)
	t.append(Point{TimeMs: e.TimeMs, Dev: uint32(dev), Seq: e.Seq, LatE6: e.LatE6, LonE6: e.LonE6, SpeedKmh: e.SpeedKmh, HeadingDeg: e.HeadingDeg}, x.dev)
	v.stats.Points++
	v.stats.TrackB += int64(cap(t.buf) - before)
}

// firstDay is the oldest day whose track is kept.
func (v *View) firstDay() int32 { return v.today - int32(v.cfg.LateDays) }

// firstScoreDay is the oldest date whose score is kept.
func (v *View) firstScoreDay() int32 { return v.today - int32(v.cfg.ReportDays) + 1 }

// advance moves today forward (never back).
func (v *View) advance(today int32) {
	if today > v.today {
		v.today = today
	}
}

// AddScore applies one daily score of vehicle, in the order of the
// topic: of a date's records the one with the highest revision, then the
// highest offset, is kept (as the owner API's ClickHouse queries pick).
func (v *View) AddScore(vehicleID string, s Score, now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.advance(Day(now.UnixMilli()))
	if s.Date < v.firstScoreDay() {
		return
	}
	if at, ok := v.erased[vehicleID]; ok && s.WindowStartMs < at { // a day that began before the erasure
		return
	}
	s.Device, s.TZ, s.ConfigVersion = v.intern(s.Device), v.intern(s.TZ), v.intern(s.ConfigVersion)
	x := v.vehicle(vehicleID)
	i, found := slices.BinarySearchFunc(x.scores, s.Date, func(a Score, d int32) int { return int(a.Date - d) })
	switch {
	case !found:
		x.scores = slices.Insert(x.scores, i, s)
		v.stats.Scores++
	case s.Revision > x.scores[i].Revision || s.Revision == x.scores[i].Revision && s.Offset >= x.scores[i].Offset:
		x.scores[i] = s
	}
}

// Trim drops the tracks of days before the window and the scores of dates
// before the report range, as of now. Vehicles with nothing left but a
// position keep it (ClickHouse would still answer it).
func (v *View) Trim(now time.Time) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.advance(Day(now.UnixMilli()))
	first, firstScore := v.firstDay(), v.firstScoreDay()
	for _, x := range v.vehicles {
		n := 0
		for n < len(x.days) && x.days[n].day < first {
			v.stats.Points -= int64(x.days[n].n)
			v.stats.TrackB -= int64(cap(x.days[n].buf))
			n++
		}
		if n > 0 {
			v.stats.Days -= n
			x.days = slices.Delete(x.days, 0, n)
		}
		m := 0
		for m < len(x.scores) && x.scores[m].Date < firstScore {
			m++
		}
		if m > 0 {
			v.stats.Scores -= m
			x.scores = slices.Delete(x.scores, 0, m)
		}
	}
}

// Stats returns the view's sizes.
func (v *View) Stats() Stats {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.stats
}

// Position returns vehicle id's latest event, if the view holds any of it.
// It is the latest event minecart holds of the vehicle once the telemetry
// feed caught up (ok false before).
func (v *View) Position(id string) (Position, bool) {
	if !v.telemetryCaught.Load() || !v.erasuresCaught.Load() {
		return Position{}, false
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	x := v.vehicles[id]
	if x == nil || !x.hasPos {
		return Position{}, false
	}
	return x.pos, true
}

// Status says whether the view answered a range.
type Status int

const (
	// Covered: the answer is the view's (possibly empty: then Known says
	// whether the vehicle has any telemetry in the view).
	Covered Status = iota
	// NotCaught: a feed has not caught up yet.
	NotCaught
	// OutOfRange: the range starts before what the view keeps, or a day of
	// it was dropped (MaxPointsPerDay).
	OutOfRange
)

// Track appends to dst the points of vehicle id with time in [fromMs,
// toMs), in (time, device, seq) order, one per key (the last applied), and
// returns them with the vehicle's device table (Point.Dev indexes it) and
// whether the vehicle has any telemetry in the view.
func (v *View) Track(dst []Point, id string, fromMs, toMs int64, now time.Time) (pts []Point, devices []string, known bool, st Status) {
	if !v.telemetryCaught.Load() || !v.erasuresCaught.Load() {
		return dst, nil, false, NotCaught
	}
	if fromMs < v.telemetryFrom.Load() {
		return dst, nil, false, OutOfRange
	}
	fd, ld := Day(fromMs), Day(toMs-1)
	for sorted := false; ; sorted = true {
		v.mu.RLock()
		today := max(v.today, Day(now.UnixMilli()))
		if fd < today-int32(v.cfg.LateDays) {
			v.mu.RUnlock()
			return dst, nil, false, OutOfRange
		}
		x := v.vehicles[id]
		if x == nil {
			v.mu.RUnlock()
			return dst, nil, false, Covered
		}
		i, _ := slices.BinarySearchFunc(x.days, fd, func(t *dayTrack, d int32) int { return int(t.day - d) })
		j := i
		for ; j < len(x.days) && x.days[j].day <= ld; j++ {
			if x.days[j].overflow {
				v.mu.RUnlock()
				return dst, nil, false, OutOfRange
			}
			if !x.days[j].sorted {
				break
			}
		}
		if j < len(x.days) && x.days[j].day <= ld {
			// A day with late or repeated points: sort it once.
			v.mu.RUnlock()
			if sorted {
				panic("view: day not sorted after sort")
			}
			v.sortDays(id, fd, ld)
			continue
		}
		for _, t := range x.days[i:j] {
			dst = t.decode(dst, fromMs, toMs)
		}
		devs, known := x.dev, x.hasPos
		v.mu.RUnlock()
		return dst, devs, known, Covered
	}
}

// sortDays sorts the days [fd, ld] of vehicle id under the write lock.
func (v *View) sortDays(id string, fd, ld int32) {
	v.mu.Lock()
	defer v.mu.Unlock()
	x := v.vehicles[id]
	if x == nil {
		return
	}
	for _, t := range x.days {
		if t.day >= fd && t.day <= ld && !t.sorted && !t.overflow {
			n, b := t.n, cap(t.buf)
			t.sort(x.dev)
			v.stats.Points += int64(t.n - n)
			v.stats.TrackB += int64(cap(t.buf) - b)
		}
	}
}

// Scores appends to dst the kept scores of vehicle id with dates in
// [fromDay, toDay] (UTC day numbers), oldest first, and says whether the
// vehicle has any telemetry in the view.
func (v *View) Scores(dst []Score, id string, fromDay, toDay int32, now time.Time) ([]Score, bool, Status) {
	if !v.Caught() {
		return dst, false, NotCaught
	}
	if int64(fromDay)*dayMs < v.scoresFrom.Load() {
		return dst, false, OutOfRange
	}
	v.mu.RLock()
	defer v.mu.RUnlock()
	today := max(v.today, Day(now.UnixMilli()))
	if fromDay < today-int32(v.cfg.ReportDays)+1 {
		return dst, false, OutOfRange
	}
	x := v.vehicles[id]
	if x == nil {
		return dst, false, Covered
	}
	i, _ := slices.BinarySearchFunc(x.scores, fromDay, func(a Score, d int32) int { return int(a.Date - d) })
	for ; i < len(x.scores) && x.scores[i].Date <= toDay; i++ {
		dst = append(dst, x.scores[i])
	}
	return dst, x.hasPos, Covered
}
