package owner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/minecart/minecart/services/scoring"
)

// Mark is a place on a vehicle's track where something the score counts
// happened: a harsh brake, acceleration or corner, or a speeding stretch.
// Samples of one kind less than MarkGap apart are one mark.
type Mark struct {
	Kind     string    `json:"kind"` // harsh_brake, harsh_accel, harsh_corner, speeding
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Lat      float64   `json:"lat"`
	Lon      float64   `json:"lon"`
	SpeedKmh float32   `json:"speed_kmh"` // at the peak
	// Peak is the strongest sample: |acceleration| in g for harsh marks,
	// km/h over the limit for speeding.
	Peak     float64 `json:"peak"`
	LimitKmh float32 `json:"limit_kmh,omitempty"`
	Samples  int     `json:"samples"`
}

// Marks is the answer of GET /v1/vehicles/{vin}/marks.
type Marks struct {
	VehicleID string    `json:"vehicle_id"`
	From      time.Time `json:"from"`
	To        time.Time `json:"to"`
	// Rules is the scoring rules version whose thresholds found the marks
	// (scoring.DefaultRules).
	Rules string `json:"rules"`
	Marks []Mark `json:"marks"`
	// Truncated: the range had more than MaxMarkSamples samples over a
	// threshold; the marks are those of the first ones.
	Truncated bool `json:"truncated,omitempty"`
}

// Limits of /marks.
const (
	MaxMarkRange   = 48 * time.Hour
	MaxMarkSamples = 20000
	MarkGap        = 3 * time.Second
)

const gForce = 9.80665

// marks lists the places where the day's samples cross the default rules'
// thresholds (docs/scoring.md): the same thresholds as the score, applied
// to single samples, so a mark is where a counted event happened (the
// score's own counting adds hysteresis and minimum durations: it may count
// fewer).
func (h *handler) marks(ctx context.Context, vin string, r *http.Request) (any, error) {
	now := h.cfg.Now().UTC().Truncate(time.Millisecond)
	to, err := parseTime(r, "to", now)
	if err != nil {
		return nil, err
	}
	from, err := parseTime(r, "from", to.Add(-24*time.Hour))
	if err != nil {
		return nil, err
	}
	if !from.Before(to) {
		return nil, badRequest("from %s is not before to %s", from.Format(time.RFC3339Nano), to.Format(time.RFC3339Nano))
	}
	if to.Sub(from) > MaxMarkRange {
		return nil, badRequest("range %s is too long: at most %s per request", to.Sub(from), MaxMarkRange)
	}
	rules := scoring.DefaultRules()
	p := clickhouse.Parameters{"v": vin, "from": ms(from), "to": ms(to),
		"brake": fmt.Sprint(-rules.HarshBrakeG * gForce), "accel": fmt.Sprint(rules.HarshAccelG * gForce),
		"corner": fmt.Sprint(rules.HarshCornerG * gForce), "minkmh": fmt.Sprint(rules.HarshMinKmh),
		"cornerkmh": fmt.Sprint(rules.CornerMinKmh), "deflimit": fmt.Sprint(rules.DefaultLimitKmh),
		"tolpct": fmt.Sprint(rules.SpeedTolerancePct), "tolkmh": fmt.Sprint(rules.SpeedToleranceKmh),
		"lim": strconv.Itoa(MaxMarkSamples + 1)}
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT time, lat_e6, lon_e6, speed_kmh, accel_lon_ms2, accel_lat_ms2,
			coalesce(speed_limit_kmh, toFloat32({deflimit:Float64})) AS lim
		FROM telemetry
		WHERE `+rangeFilter+`
		  AND ((speed_kmh >= {minkmh:Float64} AND (accel_lon_ms2 <= {brake:Float64} OR accel_lon_ms2 >= {accel:Float64}))
		    OR (speed_kmh >= {cornerkmh:Float64} AND abs(accel_lat_ms2) >= {corner:Float64})
		    OR speed_kmh > lim * (1 + {tolpct:Float64} / 100) + {tolkmh:Float64})
		ORDER BY time
		LIMIT 1 BY time
		LIMIT {lim:UInt32}`)
	if err != nil {
		return nil, fmt.Errorf("marks: %w", err)
	}
	defer rows.Close()
	out := Marks{VehicleID: vin, From: from, To: to, Rules: rules.Version, Marks: []Mark{}}
	open := map[string]int{} // kind -> index of its last mark in out.Marks
	n := 0
	for rows.Next() {
		var (
			t                 time.Time
			lat, lon          int32
			speed, alon, alat float32
			limit             float32
		)
		if err := rows.Scan(&t, &lat, &lon, &speed, &alon, &alat, &limit); err != nil {
			return nil, fmt.Errorf("marks: %w", err)
		}
		if n++; n > MaxMarkSamples {
			out.Truncated = true
			break
		}
		add := func(kind string, peak float64, lim float32) {
			if i, ok := open[kind]; ok && t.Sub(out.Marks[i].End) <= MarkGap {
				m := &out.Marks[i]
				m.End, m.Samples = t.UTC(), m.Samples+1
				if peak > m.Peak {
					m.Peak, m.Lat, m.Lon, m.SpeedKmh = peak, float64(lat)/1e6, float64(lon)/1e6, speed
				}
				return
			}
			open[kind] = len(out.Marks)
			out.Marks = append(out.Marks, Mark{Kind: kind, Start: t.UTC(), End: t.UTC(), Lat: float64(lat) / 1e6, Lon: float64(lon) / 1e6,
				SpeedKmh: speed, Peak: peak, LimitKmh: lim, Samples: 1})
		}
		g := func(a float32) float64 { return float64(int64(float64(a)/gForce*100+0.5)) / 100 }
		if float64(speed) >= rules.HarshMinKmh {
			if float64(alon) <= -rules.HarshBrakeG*gForce {
				add("harsh_brake", g(-alon), 0)
			} else if float64(alon) >= rules.HarshAccelG*gForce {
				add("harsh_accel", g(alon), 0)
			}
		}
		if float64(speed) >= rules.CornerMinKmh && (float64(alat) >= rules.HarshCornerG*gForce || float64(alat) <= -rules.HarshCornerG*gForce) {
			if alat < 0 {
				alat = -alat
			}
			add("harsh_corner", g(alat), 0)
		}
		if float64(speed) > float64(limit)*(1+rules.SpeedTolerancePct/100)+rules.SpeedToleranceKmh {
			add("speeding", float64(int64((float64(speed)-float64(limit))*10+0.5))/10, limit)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("marks: %w", err)
	}
	if len(out.Marks) == 0 {
		if err := h.mustKnow(ctx, vin); err != nil {
			return nil, err
		}
	}
	return out, nil
}
