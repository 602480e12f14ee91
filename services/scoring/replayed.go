package scoring

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/telemetry"
)

// FlagReplay: a trip of the day repeats an earlier trip (the vehicle's own
// or another's) within tolerance (docs/scoring.md, "Replay detection").
const FlagReplay = "replayed_trace"

// FactorReplay is the factor of FlagReplay on the day's points: a replayed
// trace pays nothing.
const FactorReplay = 0.0

// fpKeyPrefix starts the changelog key of a fingerprint record (vehicle
// ids are [A-Za-z0-9._-], so no window key starts with '#').
const fpKeyPrefix = "#fp/"

// endKeyPrefix starts the changelog key of a vehicle's end record,
// "#end/<vehicle>" (replay.AppendEnd): where its latest day closed on
// this task last saw it, the anchor of its next day's first trip.
const endKeyPrefix = "#end/"

// replayState is a task's replay detection: the fingerprints of the days it
// closed in the last Retention days, and the records Flush owes the
// changelog.
type replayState struct {
	cfg   replay.Config
	idx   *replay.Index
	put   []replay.Fingerprint // added since the last Flush
	gone  []string             // fingerprint keys expired since the last Flush
	ends  map[string]bool      // vehicles whose end changed (set or expired) since the last Flush
	today string               // date of the last expiry
}

// EnableReplay turns replay detection on: every open day folds its moving
// fixes into a replay.Builder (kept in its changelog record), and when a
// day is drained its trips' fingerprints are checked against those of the
// days this task closed in the last retention days (at most budget per
// day) before being added; a match flags the day FlagReplay (points x0).
// The fingerprints live in the task's changelog under "#fp/<vehicle>/<date>/<trip>",
// so a restart rebuilds the index; expired ones get tombstones. Call it
// before Restore.
func (w *Windows) EnableReplay(cfg replay.Config, retention, budget int) error {
	idx, err := replay.NewIndex(cfg, retention, budget)
	if err != nil {
		return err
	}
	w.replay = &replayState{cfg: cfg, idx: idx}
	return nil
}

// ReplayIndexLen is the number of fingerprints the task holds (0 when
// replay detection is off).
func (w *Windows) ReplayIndexLen() int {
	if w.replay == nil {
		return 0
	}
	return w.replay.idx.Len()
}

// trace folds ev into the Builder of slot i (day: its day): every fix
// with a position (the day's last fix, Builder.End, is the next day's
// anchor), moving ones into the trace.
func (w *Windows) trace(i int32, day *Day, ev *telemetry.Event) {
	rs := w.replay
	if rs == nil || ev.Lat == 0 && ev.Lon == 0 {
		return
	}
	tr := w.traces[i]
	if tr == nil {
		tr = replay.NewBuilder(day.Start)
		w.setTrace(i, tr)
	}
	tr.Add(&rs.cfg, replay.Fix{TimeMs: ev.TimeMs, Lat: ev.Lat, Lon: ev.Lon, SpeedKmh: ev.SpeedKmh})
}

// setTrace keeps slot i's replay Builder.
func (w *Windows) setTrace(i int32, tr *replay.Builder) {
	if w.traces == nil {
		w.traces = map[int32]*replay.Builder{}
	}
	w.traces[i] = tr
}

// judgeReplay fingerprints a drained day, checks each trip against the
// index, adds them, records the day's last fix as the vehicle's end,
// expires days past the retention, flags res, and returns the day's
// fingerprints.
func (w *Windows) judgeReplay(i int32, vehicle, date string, res *Result) []replay.Fingerprint {
	rs := w.replay
	if rs == nil {
		return nil
	}
	if date != rs.today {
		rs.today = date
		if d, err := time.Parse(time.DateOnly, date); err == nil {
			keep := d.AddDate(0, 0, -(rs.idx.Retention() - 1)).Format(time.DateOnly)
			gone, ends := rs.idx.Expire(keep)
			rs.gone = append(rs.gone, gone...)
			for _, v := range ends {
				rs.endChanged(v)
			}
		}
	}
	tr := w.traces[i]
	if tr == nil {
		return nil
	}
	fps := tr.Fingerprints(&rs.cfg, vehicle, date)
	for k := range fps {
		rs.idx.Anchor(&fps[k]) // the day's first trip against the vehicle's earlier days
	}
	var reasons []string
	for i := range fps {
		if ms := rs.idx.Check(&fps[i]); len(ms) > 0 {
			m := ms[0]
			reasons = append(reasons, fmt.Sprintf("trip %d repeats %s/%s trip %d (%.0f%% of its shingles)",
				fps[i].Trip, m.Of.Vehicle, m.Of.Date, m.Of.Trip, 100*m.Contain))
		}
		if rs.idx.Add(&fps[i]) {
			rs.put = append(rs.put, fps[i])
		}
	}
	if t, c, ok := tr.End(); ok && rs.idx.SetEnd(vehicle, replay.End{Date: date, TimeMs: t, Cell: c}) {
		rs.endChanged(vehicle)
	}
	if len(reasons) > 0 {
		res.Flags = append(res.Flags, FlagReplay)
		res.Reasons = append(res.Reasons, strings.Join(reasons, "; "))
		res.Points = int64(float64(res.Points) * FactorReplay)
	}
	return fps
}

func (rs *replayState) endChanged(vehicle string) {
	if rs.ends == nil {
		rs.ends = map[string]bool{}
	}
	rs.ends[vehicle] = true
}

// flushReplay writes the fingerprints added and the tombstones of those
// expired since the last Flush, then, in vehicle id order, each changed
// end: its record, or a tombstone when it expired.
func (w *Windows) flushReplay(put func(key string, value []byte)) {
	rs := w.replay
	if rs == nil {
		return
	}
	for _, k := range rs.gone {
		put(fpKeyPrefix+k, nil)
	}
	for i := range rs.put {
		put(fpKeyPrefix+replay.Key(&rs.put[i]), replay.AppendBinary(nil, &rs.put[i]))
	}
	rs.gone, rs.put = rs.gone[:0], rs.put[:0]
	if len(rs.ends) == 0 {
		return
	}
	vs := make([]string, 0, len(rs.ends))
	for v := range rs.ends {
		vs = append(vs, v)
	}
	slices.Sort(vs)
	for _, v := range vs {
		if e, ok := rs.idx.EndOf(v); ok {
			put(endKeyPrefix+v, replay.AppendEnd(nil, &e))
		} else {
			put(endKeyPrefix+v, nil)
		}
	}
	clear(rs.ends)
}

// restoreEnd applies a vehicle's end record of the changelog (a tombstone
// restores nothing: an end expires with the fingerprints older than it).
func (w *Windows) restoreEnd(key string, value []byte) error {
	rs := w.replay
	if rs == nil || value == nil {
		return nil
	}
	v := strings.TrimPrefix(key, endKeyPrefix)
	if v == "" {
		return fmt.Errorf("restore %s: bad end key", key)
	}
	e, err := replay.DecodeEnd(value)
	if err != nil {
		return fmt.Errorf("restore %s: %w", key, err)
	}
	rs.idx.SetEnd(v, e)
	return nil
}

// restoreReplay applies a fingerprint record of the changelog.
func (w *Windows) restoreReplay(key string, value []byte) error {
	rs := w.replay
	if rs == nil {
		return nil // detection off: the records are kept, not loaded
	}
	k := strings.TrimPrefix(key, fpKeyPrefix)
	if value == nil {
		parts := strings.Split(k, "/")
		if len(parts) != 3 {
			return fmt.Errorf("restore %s: bad fingerprint key", key)
		}
		trip, err := strconv.ParseUint(parts[2], 10, 16)
		if err != nil {
			return fmt.Errorf("restore %s: bad fingerprint key", key)
		}
		rs.idx.Remove(parts[0], parts[1], uint16(trip))
		return nil
	}
	fp, err := replay.Decode(value)
	if err != nil {
		return fmt.Errorf("restore %s: %w", key, err)
	}
	if replay.Key(&fp) != k {
		return fmt.Errorf("restore %s: record of %s", key, replay.Key(&fp))
	}
	rs.idx.Add(&fp)
	return nil
}
