package owner

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Report is one day's usage report of a vehicle (a row of daily_scores,
// the latest version of it): what scoring measured and the points it gave.
type Report struct {
	Date              string    `json:"date"`
	ScoreID           string    `json:"score_id"`
	TZ                string    `json:"tz"`
	WindowStart       time.Time `json:"window_start"`
	WindowEnd         time.Time `json:"window_end"`
	ConfigVersion     string    `json:"config_version"`
	Score             float32   `json:"score"`
	Points            int64     `json:"points"`
	DistanceKm        float64   `json:"distance_km"`
	GPSKm             float64   `json:"gps_km"`
	OdometerKm        float64   `json:"odometer_km"`
	DrivingS          uint32    `json:"driving_s"`
	HarshBrake        uint32    `json:"harsh_brake"`
	HarshAccel        uint32    `json:"harsh_accel"`
	HarshCorner       uint32    `json:"harsh_corner"`
	SpeedingS         uint32    `json:"speeding_s"`
	NightS            uint32    `json:"night_s"`
	FatigueEvents     uint32    `json:"fatigue_events"`
	Events            uint64    `json:"events"`
	LateEvents        *uint64   `json:"late_events,omitempty"`
	GPSJumps          uint32    `json:"gps_jumps"`
	HDOPRejected      uint64    `json:"hdop_rejected"`
	OdometerRollbacks uint32    `json:"odometer_rollbacks"`
	Flags             []string  `json:"flags"`
	FlagReasons       []string  `json:"flag_reasons"`
	// Revision: 0 for the score made when the day closed, n > 0 for its
	// n-th re-score after late data (docs/scoring.md "Late data"); the
	// report is always the day's latest revision.
	Revision uint32 `json:"revision"`
	// LateAdded: events added to the day after it closed (all revisions).
	LateAdded uint64 `json:"late_added,omitempty"`
	// RevisionReason says why the day was re-scored (empty for a day
	// scored once, at its close): RevisionReason's sentence.
	RevisionReason string `json:"revision_reason,omitempty"`
}

// RevisionReason is the owner's sentence for a day scored after it
// closed (docs/scoring.md "Late data", "Global replay check"): empty for the
// score made at the close (revision 0, no late events); else
// "<verb> after the day closed: revision <revision>, <points> points, rules
// <config_version>" with verb "re-scored" ("scored" for a revision 0 whose
// every event came late), then "; <late_added> events arrived late" when
// late_added > 0, then "; flagged replayed_trace (see flag_reasons)" when
// flags hold replayed_trace (a revision a replay verdict made has no late
// events). The ledger's rescore entry of the same revision gives the
// signed change in points (docs/ledger.md "Rescore").
func RevisionReason(revision uint32, lateAdded uint64, points int64, configVersion string, flags []string) string {
	if revision == 0 && lateAdded == 0 {
		return ""
	}
	verb := "re-scored"
	if revision == 0 {
		verb = "scored"
	}
	s := fmt.Sprintf("%s after the day closed: revision %d, %d points, rules %s", verb, revision, points, configVersion)
	if lateAdded > 0 {
		s += fmt.Sprintf("; %d events arrived late", lateAdded)
	}
	if slices.Contains(flags, "replayed_trace") {
		s += "; flagged replayed_trace (see flag_reasons)"
	}
	return s
}

// The latest version of each day is taken with LIMIT 1 BY over (greatest
// revision, then greatest src_offset): daily_scores keeps every revision
// of a day (its sorting key ends with revision) and ReplacingMergeTree(
// src_offset) collapses only copies of one revision. The view keeps the
// same one (view.AddScore). LIMIT 1 BY rather than FINAL: unlike FINAL it
// can use a projection of daily_scores sorted by vehicle
// (docs/analytics.md, "Owner API").

// Reports is the answer of /reports: days in [From, To] that have a
// score, oldest first.
type Reports struct {
	VehicleID  string   `json:"vehicle_id"`
	From       string   `json:"from"`
	To         string   `json:"to"` // inclusive
	Reports    []Report `json:"reports"`
	NextCursor string   `json:"next_cursor,omitempty"`
}

func parseDate(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return t, badRequest("%s %q: want a date such as 2026-11-20", name, s)
	}
	return t, nil
}

func (h *handler) reports(ctx context.Context, vin string, r *http.Request) (any, error) {
	today := h.cfg.Now().UTC().Truncate(24 * time.Hour)
	to, err := parseDate(r, "to", today)
	if err != nil {
		return nil, err
	}
	from, err := parseDate(r, "from", to.AddDate(0, 0, -29))
	if err != nil {
		return nil, err
	}
	if from.After(to) {
		return nil, badRequest("from %s is after to %s", from.Format(time.DateOnly), to.Format(time.DateOnly))
	}
	if days := int(to.Sub(from).Hours()/24) + 1; days > h.cfg.MaxReportDays {
		return nil, badRequest("range of %d days is too long: at most %d per request", days, h.cfg.MaxReportDays)
	}
	limit, err := intParam(r, "limit", DefaultReports, 1, MaxReports)
	if err != nil {
		return nil, err
	}
	key := queryKey("reports", vin, from.Format(time.DateOnly), to.Format(time.DateOnly))
	cur, more, err := decodeCursor(r.URL.Query().Get("cursor"), key)
	if err != nil {
		return nil, err
	}
	start := from
	if more {
		last, err := time.Parse(time.DateOnly, cur.Date)
		if err != nil {
			return nil, badRequest("cursor: malformed")
		}
		start = last.AddDate(0, 0, 1)
	}
	out := Reports{VehicleID: vin, From: from.Format(time.DateOnly), To: to.Format(time.DateOnly), Reports: []Report{}}
	if h.cfg.View != nil {
		if page, ok := h.viewReports(vin, start, to, limit, key, more, out); ok {
			return page, nil
		}
	}
	p := clickhouse.Parameters{"v": vin, "from": start.Format(time.DateOnly), "to": to.Format(time.DateOnly),
		"lim": strconv.Itoa(limit + 1)}
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT date, id, tz, window_start, window_end, config_version, score, points, distance_km, gps_km,
			odometer_km, driving_s, harsh_brake, harsh_accel, harsh_corner, speeding_s, night_s, fatigue_events,
			events, late_events, gps_jumps, hdop_rejected, odometer_rollbacks, flags, flag_reasons, revision, late_added
		FROM daily_scores
		WHERE date >= {from:Date} AND date <= {to:Date} AND vehicle_id = {v:String}
		ORDER BY date, revision DESC, src_offset DESC
		LIMIT 1 BY date
		LIMIT {lim:UInt32}`)
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			x    Report
			date time.Time
		)
		if err := rows.Scan(&date, &x.ScoreID, &x.TZ, &x.WindowStart, &x.WindowEnd, &x.ConfigVersion, &x.Score,
			&x.Points, &x.DistanceKm, &x.GPSKm, &x.OdometerKm, &x.DrivingS, &x.HarshBrake, &x.HarshAccel,
			&x.HarshCorner, &x.SpeedingS, &x.NightS, &x.FatigueEvents, &x.Events, &x.LateEvents, &x.GPSJumps,
			&x.HDOPRejected, &x.OdometerRollbacks, &x.Flags, &x.FlagReasons, &x.Revision, &x.LateAdded); err != nil {
			return nil, fmt.Errorf("reports: %w", err)
		}
		if len(out.Reports) == limit {
			out.NextCursor = cursor{Query: key, Date: out.Reports[limit-1].Date}.encode()
			break
		}
		x.Date = date.Format(time.DateOnly)
		x.WindowStart, x.WindowEnd = x.WindowStart.UTC(), x.WindowEnd.UTC()
		x.RevisionReason = RevisionReason(x.Revision, x.LateAdded, x.Points, x.ConfigVersion, x.Flags)
		if x.Flags == nil {
			x.Flags = []string{}
		}
		if x.FlagReasons == nil {
			x.FlagReasons = []string{}
		}
		out.Reports = append(out.Reports, x)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	if len(out.Reports) == 0 && !more {
		if err := h.mustKnow(ctx, vin); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Reading is a sensor's latest value in the window and when it was read.
type Reading struct {
	Value float32   `json:"value"`
	Time  time.Time `json:"time"`
}

// Fault is a diagnostic trouble code seen in the window.
type Fault struct {
	Code      string    `json:"code"`
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	Samples   uint64    `json:"samples"`
	// Active: the vehicle's latest event in the window reports it.
	Active bool `json:"active"`
}

// Condition is the answer of /condition.
type Condition struct {
	VehicleID  string     `json:"vehicle_id"`
	Since      time.Time  `json:"since"`
	Events     uint64     `json:"events"` // events in the window
	LastSeen   *time.Time `json:"last_seen,omitempty"`
	EngineOn   *bool      `json:"engine_on,omitempty"`
	OdometerKm *float64   `json:"odometer_km,omitempty"`
	FuelPct    *Reading   `json:"fuel_pct,omitempty"`
	BatteryV   *Reading   `json:"battery_v,omitempty"`
	CoolantC   *Reading   `json:"coolant_c,omitempty"`
	Faults     []Fault    `json:"faults"` // most recently seen first, at most 200
}

func (h *handler) condition(ctx context.Context, vin string, r *http.Request) (any, error) {
	days, err := intParam(r, "days", max(1, int(h.cfg.ConditionWindow/(24*time.Hour))), 1, 365)
	if err != nil {
		return nil, err
	}
	now := h.cfg.Now().UTC().Truncate(time.Millisecond)
	since := now.Add(-time.Duration(days) * 24 * time.Hour)
	out := Condition{VehicleID: vin, Since: since, Faults: []Fault{}}
	p := clickhouse.Parameters{"v": vin, "since": ms(since), "now": ms(now)}
	ctx = bind(ctx, p)
	var (
		last               time.Time
		engine             bool
		odo                uint64
		fuelT, batT, coolT time.Time
		fuel, bat, cool    *float32
		fuelN, batN, coolN uint64
	)
	err = h.cfg.Conn.QueryRow(ctx, `
		SELECT count(), max(time), argMax(engine_on, time), argMax(odometer_m, time),
			countIf(fuel_pct IS NOT NULL), maxIf(time, fuel_pct IS NOT NULL), argMaxIf(fuel_pct, time, fuel_pct IS NOT NULL),
			countIf(battery_v IS NOT NULL), maxIf(time, battery_v IS NOT NULL), argMaxIf(battery_v, time, battery_v IS NOT NULL),
			countIf(coolant_c IS NOT NULL), maxIf(time, coolant_c IS NOT NULL), argMaxIf(coolant_c, time, coolant_c IS NOT NULL)
		FROM telemetry
		WHERE vehicle_id = {v:String}
		  AND time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') AND time <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')`,
	).Scan(&out.Events, &last, &engine, &odo, &fuelN, &fuelT, &fuel, &batN, &batT, &bat, &coolN, &coolT, &cool)
	if err != nil {
		return nil, fmt.Errorf("condition: %w", err)
	}
	if out.Events == 0 {
		if err := h.mustKnow(ctx, vin); err != nil {
			return nil, err
		}
		return out, nil
	}
	last = last.UTC()
	km := float64(odo) / 1000
	out.LastSeen, out.EngineOn, out.OdometerKm = &last, &engine, &km
	reading := func(n uint64, t time.Time, v *float32) *Reading {
		if n == 0 || v == nil {
			return nil
		}
		return &Reading{Value: *v, Time: t.UTC()}
	}
	out.FuelPct, out.BatteryV, out.CoolantC = reading(fuelN, fuelT, fuel), reading(batN, batT, bat), reading(coolN, coolT, cool)

	rows, err := h.cfg.Conn.Query(ctx, `
		SELECT code, min(time) AS first_seen, max(time) AS last_seen, count()
		FROM telemetry
		ARRAY JOIN fault_codes AS code
		WHERE vehicle_id = {v:String}
		  AND time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') AND time <= fromUnixTimestamp64Milli({now:Int64}, 'UTC')
		GROUP BY code
		ORDER BY last_seen DESC, code
		LIMIT `+strconv.Itoa(maxFaultCodes))
	if err != nil {
		return nil, fmt.Errorf("fault codes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var f Fault
		if err := rows.Scan(&f.Code, &f.FirstSeen, &f.LastSeen, &f.Samples); err != nil {
			return nil, fmt.Errorf("fault codes: %w", err)
		}
		f.FirstSeen, f.LastSeen = f.FirstSeen.UTC(), f.LastSeen.UTC()
		f.Active = f.LastSeen.Equal(last)
		out.Faults = append(out.Faults, f)
	}
	return out, rows.Err()
}
