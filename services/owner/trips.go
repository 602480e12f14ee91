package owner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// Trips splits a vehicle's telemetry into trips and counts them per
// period (GET /v1/vehicles/{vin}/trips). A trip is a maximal run of samples
// with the engine on in which consecutive samples are at most TripGap
// apart: a sample with the engine on starts a new trip when the sample
// before it (in time) had the engine off, or came more than TripGap
// earlier, or when it is the range's first. Samples with the engine off
// belong to no trip. A trip counts in the period (the vehicle's local day,
// ISO week from Monday, or month) of its first sample; its distance is the
// span of its odometer readings, its driving time the span of its samples.
type Trips struct {
	VehicleID string       `json:"vehicle_id"`
	From      time.Time    `json:"from"`
	To        time.Time    `json:"to"`
	By        string       `json:"by"` // day, week or month
	TZ        string       `json:"tz"` // the time zone of the periods: the vehicle's newest sample's
	GapS      int          `json:"gap_s"`
	Trips     int          `json:"trips"` // in the whole range
	Periods   []TripPeriod `json:"periods"`
}

// TripPeriod is one period with trips, oldest first; periods without a
// trip are left out.
type TripPeriod struct {
	Start    string  `json:"start"` // YYYY-MM-DD, local: the day, the week's Monday, the month's first day
	Trips    int     `json:"trips"`
	Km       float64 `json:"km"`
	DrivingS int64   `json:"driving_s"`
}

// Limits of /trips.
const (
	TripGap      = 5 * time.Minute
	MaxTripRange = 93 * 24 * time.Hour
)

var tripPeriod = map[string]string{"day": "toDate(start, {tz:String})", "week": "toMonday(start, {tz:String})", "month": "toStartOfMonth(start, {tz:String})"}

func (h *handler) trips(ctx context.Context, vin string, r *http.Request) (any, error) {
	now := h.cfg.Now().UTC().Truncate(time.Millisecond)
	to, err := parseTime(r, "to", now)
	if err != nil {
		return nil, err
	}
	from, err := parseTime(r, "from", to.Add(-30*24*time.Hour))
	if err != nil {
		return nil, err
	}
	if !from.Before(to) {
		return nil, badRequest("from %s is not before to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	if to.Sub(from) > MaxTripRange {
		return nil, badRequest("range %s is too long: at most %s per request", to.Sub(from), MaxTripRange)
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		by = "day"
	}
	period, ok := tripPeriod[by]
	if !ok {
		return nil, badRequest("by %q: want day, week or month", by)
	}
	tz, err := h.vehicleTZ(ctx, vin)
	if err != nil {
		return nil, err
	}
	p := clickhouse.Parameters{"v": vin, "from": ms(from), "to": ms(to), "tz": tz, "gap": strconv.FormatInt(TripGap.Milliseconds(), 10)}
	// The time zone of toDate & co must be a constant: ClickHouse folds the
	// query parameter into one.
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT toString(`+period+`) AS period, count() AS trips,
			sum(odo_max - odo_min) / 1000 AS km, toInt64(sum(dateDiff('millisecond', start, stop)) / 1000) AS driving_s
		FROM (
			SELECT trip, min(time) AS start, max(time) AS stop,
				max(if(odometer_m > 0, odometer_m, NULL)) AS odo_max, min(if(odometer_m > 0, odometer_m, NULL)) AS odo_min
			FROM (
				SELECT time, engine_on, odometer_m,
					sum(starts) OVER (ORDER BY time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS trip
				FROM (
					SELECT time, engine_on, odometer_m,
						engine_on AND (row_number() OVER w = 1 OR NOT lagInFrame(engine_on, 1) OVER w
							OR dateDiff('millisecond', lagInFrame(time, 1) OVER w, time) > {gap:Int64}) AS starts
					FROM (
						SELECT time, engine_on, odometer_m FROM telemetry
						WHERE `+rangeFilter+`
						ORDER BY time LIMIT 1 BY time
					)
					WINDOW w AS (ORDER BY time ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
				)
			)
			WHERE engine_on
			GROUP BY trip
		)
		GROUP BY period
		ORDER BY period`)
	if err != nil {
		return nil, fmt.Errorf("trips: %w", err)
	}
	defer rows.Close()
	out := Trips{VehicleID: vin, From: from, To: to, By: by, TZ: tz, GapS: int(TripGap / time.Second), Periods: []TripPeriod{}}
	for rows.Next() {
		var (
			tp TripPeriod
			n  uint64
			km *float64
		)
		if err := rows.Scan(&tp.Start, &n, &km, &tp.DrivingS); err != nil {
			return nil, fmt.Errorf("trips: %w", err)
		}
		tp.Trips = int(n)
		if km != nil {
			tp.Km = float64(int64(*km*10+0.5)) / 10
		}
		out.Trips += tp.Trips
		out.Periods = append(out.Periods, tp)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("trips: %w", err)
	}
	return out, nil
}

// vehicleTZ is the time zone of the vehicle's newest sample (UTC when it
// names none); an unknown vehicle is a 404.
func (h *handler) vehicleTZ(ctx context.Context, vin string) (string, error) {
	rows, err := h.cfg.Conn.Query(bind(ctx, clickhouse.Parameters{"v": vin}),
		`SELECT tz FROM telemetry WHERE vehicle_id = {v:String} ORDER BY time DESC LIMIT 1`)
	if err != nil {
		return "", fmt.Errorf("trips: time zone: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return "", fmt.Errorf("trips: time zone: %w", err)
		}
		return "", notFound("vehicle %q: unknown", vin)
	}
	var tz string
	if err := rows.Scan(&tz); err != nil {
		return "", fmt.Errorf("trips: time zone: %w", err)
	}
	if _, err := time.LoadLocation(tz); err != nil || tz == "" {
		tz = "UTC"
	}
	return tz, nil
}
