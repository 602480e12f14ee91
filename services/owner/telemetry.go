package owner

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// bind attaches server-side query parameters: user values never enter the
// SQL text.
func bind(ctx context.Context, p clickhouse.Parameters) context.Context {
	return clickhouse.Context(ctx, clickhouse.WithParameters(p))
}

func ms(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// known reports whether minecart holds any telemetry of vehicle vin.
func (h *handler) known(ctx context.Context, vin string) (bool, error) {
	rows, err := h.cfg.Conn.Query(bind(ctx, clickhouse.Parameters{"v": vin}),
		`SELECT 1 FROM telemetry WHERE vehicle_id = {v:String} LIMIT 1`)
	if err != nil {
		return false, fmt.Errorf("vehicle lookup: %w", err)
	}
	defer rows.Close()
	found := rows.Next()
	return found, rows.Err()
}

func (h *handler) mustKnow(ctx context.Context, vin string) error {
	ok, err := h.known(ctx, vin)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("vehicle %q: unknown", vin)
	}
	return nil
}

// Position is the answer of /position: the latest telemetry event.
type Position struct {
	VehicleID  string    `json:"vehicle_id"`
	Time       time.Time `json:"time"`
	AgeS       float64   `json:"age_s"` // Now - Time
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	HDOP       *float32  `json:"hdop,omitempty"`
	SpeedKmh   float32   `json:"speed_kmh"`
	HeadingDeg float32   `json:"heading_deg"`
	OdometerKm float64   `json:"odometer_km"`
	EngineOn   bool      `json:"engine_on"`
}

func (h *handler) position(ctx context.Context, vin string, _ *http.Request) (any, error) {
	if h.cfg.View != nil {
		if p, ok := h.viewPosition(vin); ok {
			return p, nil
		}
	}
	rows, err := h.cfg.Conn.Query(bind(ctx, clickhouse.Parameters{"v": vin}), `
		SELECT time, lat_e6, lon_e6, hdop, speed_kmh, heading_deg, odometer_m, engine_on
		FROM telemetry WHERE vehicle_id = {v:String}
		ORDER BY time DESC LIMIT 1`)
	if err != nil {
		return nil, fmt.Errorf("position: %w", err)
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("position: %w", err)
		}
		return nil, notFound("vehicle %q: unknown", vin)
	}
	p := Position{VehicleID: vin}
	var lat, lon int32
	var odo uint64
	if err := rows.Scan(&p.Time, &lat, &lon, &p.HDOP, &p.SpeedKmh, &p.HeadingDeg, &odo, &p.EngineOn); err != nil {
		return nil, fmt.Errorf("position: %w", err)
	}
	p.Time = p.Time.UTC()
	p.Lat, p.Lon, p.OdometerKm = float64(lat)/1e6, float64(lon)/1e6, float64(odo)/1000
	p.AgeS = h.cfg.Now().Sub(p.Time).Seconds()
	return p, rows.Err()
}

// TrackPoint is one point of a track.
type TrackPoint struct {
	Time       time.Time `json:"time"`
	Lat        float64   `json:"lat"`
	Lon        float64   `json:"lon"`
	SpeedKmh   float32   `json:"speed_kmh"`
	HeadingDeg float32   `json:"heading_deg"`
}

// Track is the answer of /track. When the range holds more than
// max_points events, Downsampled is set and the range is cut into buckets
// of BucketMs: each bucket gives its first event, and the last page also
// ends with the range's last event, so a track keeps both ends and has at
// most max_points points over all its pages.
type Track struct {
	VehicleID   string       `json:"vehicle_id"`
	From        time.Time    `json:"from"`
	To          time.Time    `json:"to"` // exclusive
	InRange     uint64       `json:"events_in_range"`
	Downsampled bool         `json:"downsampled"`
	BucketMs    int64        `json:"bucket_ms,omitempty"`
	Points      []TrackPoint `json:"points"`
	NextCursor  string       `json:"next_cursor,omitempty"`
}

func parseTime(r *http.Request, name string, def time.Time) (time.Time, error) {
	s := r.URL.Query().Get(name)
	if s == "" {
		return def, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return t, badRequest("%s %q: want an RFC 3339 time such as 2026-11-20T08:00:00Z", name, s)
	}
	return t.UTC().Truncate(time.Millisecond), nil
}

func (h *handler) track(ctx context.Context, vin string, r *http.Request) (any, error) {
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
	if to.Sub(from) > h.cfg.MaxTrackRange {
		return nil, badRequest("range %s is too long: at most %s per request", to.Sub(from), h.cfg.MaxTrackRange)
	}
	maxPoints, err := intParam(r, "max_points", DefaultMaxPoints, 2, MaxMaxPoints)
	if err != nil {
		return nil, err
	}
	limit, err := intParam(r, "limit", DefaultPageSize, 1, MaxPageSize)
	if err != nil {
		return nil, err
	}
	key := queryKey("track", vin, ms(from), ms(to), strconv.Itoa(maxPoints))
	cur, more, err := decodeCursor(r.URL.Query().Get("cursor"), key)
	if err != nil {
		return nil, err
	}
	out := Track{VehicleID: vin, From: from, To: to, Points: []TrackPoint{}}
	if h.cfg.View != nil {
		if page, ok := h.viewTrack(vin, from, to, maxPoints, limit, key, cur, more, out); ok {
			return page, nil
		}
	}
	p := clickhouse.Parameters{"v": vin, "from": ms(from), "to": ms(to)}
	if !more {
		// The first page and the range's count in one query; a range
		// of more than maxPoints events is downsampled instead.
		cur = cursor{Query: key, Mode: "raw", TimeMs: -1, Bucket: -1}
		page, n, err := h.rawTrack(ctx, p, cur, limit, out, true, to.Sub(from))
		if err != nil {
			return nil, err
		}
		if n == 0 {
			if err := h.mustKnow(ctx, vin); err != nil {
				return nil, err
			}
			return out, nil
		}
		if n <= uint64(maxPoints) {
			return page, nil
		}
		cur.Mode, cur.Total = "ds", n
	}
	out.InRange = cur.Total
	if cur.Mode == "raw" {
		page, _, err := h.rawTrack(ctx, p, cur, limit, out, false, to.Sub(from))
		return page, err
	}
	// maxPoints-1 buckets leave room for the range's last event.
	width := (to.Sub(from).Milliseconds() + int64(maxPoints) - 2) / int64(maxPoints-1)
	out.Downsampled, out.BucketMs = true, width
	return h.sampledTrack(ctx, p, cur, limit, width, out)
}

// rangeFilter selects the vehicle's events in [from, to).
const rangeFilter = `vehicle_id = {v:String}
		  AND time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') AND time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')`

// windowCountSpan is the longest range whose first track page counts the
// range's events in the same scan (count() OVER ()): the engine then holds
// and sorts every event of the range, at most a local day's (25 h). A
// longer range is counted by a subquery, a second scan of the same
// granules, so that the page keeps its top-N sort. Measured on 20M rows
// (docs/scale.md, section 6): a day's first page read 16,384 rows instead
// of 32,768.
const windowCountSpan = 25 * time.Hour

// rawTrack pages through every event of the range by its sort key; with
// count it also returns the number of events in the range (first page,
// which has no cursor: its filter is the range alone).
func (h *handler) rawTrack(ctx context.Context, p clickhouse.Parameters, cur cursor, limit int, out Track, count bool, span time.Duration) (Track, uint64, error) {
	p["lim"] = strconv.Itoa(limit + 1)
	n := "toUInt64(0)"
	after := `
		  AND time >= fromUnixTimestamp64Milli(greatest({ct:Int64}, {from:Int64}), 'UTC')
		  AND (toUnixTimestamp64Milli(time), toString(device_id), seq) > ({ct:Int64}, {cd:String}, {cs:UInt64})`
	switch {
	case count && span <= windowCountSpan:
		n, after = "toUInt64(count() OVER ())", ""
	case count:
		n, after = "(SELECT count() FROM telemetry WHERE "+rangeFilter+")", ""
	default:
		p["ct"], p["cd"], p["cs"] = strconv.FormatInt(cur.TimeMs, 10), cur.Device, strconv.FormatUint(cur.Seq, 10)
	}
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT time, device_id, seq, lat_e6, lon_e6, speed_kmh, heading_deg, `+n+`
		FROM telemetry
		WHERE `+rangeFilter+after+`
		ORDER BY time, device_id, seq
		LIMIT 1 BY time, device_id, seq
		LIMIT {lim:UInt32}`)
	if err != nil {
		return out, 0, fmt.Errorf("track: %w", err)
	}
	defer rows.Close()
	var total uint64
	for rows.Next() {
		var (
			pt       TrackPoint
			dev      string
			seq      uint64
			lat, lon int32
		)
		if err := rows.Scan(&pt.Time, &dev, &seq, &lat, &lon, &pt.SpeedKmh, &pt.HeadingDeg, &total); err != nil {
			return out, 0, fmt.Errorf("track: %w", err)
		}
		if count {
			cur.Total, out.InRange = total, total
		}
		if len(out.Points) == limit {
			cur.TimeMs = out.Points[limit-1].Time.UnixMilli() // Device, Seq: of the same point
			out.NextCursor = cur.encode()
			break
		}
		pt.Time = pt.Time.UTC()
		pt.Lat, pt.Lon = float64(lat)/1e6, float64(lon)/1e6
		out.Points = append(out.Points, pt)
		cur.Device, cur.Seq = dev, seq
	}
	return out, total, rows.Err()
}

// sampledTrack gives each time bucket's first event (argMin by time),
// computed in ClickHouse; the last page adds the range's last event.
func (h *handler) sampledTrack(ctx context.Context, p clickhouse.Parameters, cur cursor, limit int, width int64, out Track) (any, error) {
	p["w"], p["cb"], p["lim"] = strconv.FormatInt(width, 10), strconv.FormatInt(cur.Bucket, 10), strconv.Itoa(limit+1)
	rows, err := h.cfg.Conn.Query(bind(ctx, p), `
		SELECT
			intDiv(toUnixTimestamp64Milli(time) - {from:Int64}, {w:Int64}) AS b,
			min(time), argMin(lat_e6, time), argMin(lon_e6, time), argMin(speed_kmh, time), argMin(heading_deg, time),
			max(time), argMax(lat_e6, time), argMax(lon_e6, time), argMax(speed_kmh, time), argMax(heading_deg, time)
		FROM telemetry
		WHERE `+rangeFilter+`
		  AND time >= fromUnixTimestamp64Milli({from:Int64} + ({cb:Int64} + 1) * {w:Int64}, 'UTC')
		GROUP BY b
		ORDER BY b
		LIMIT {lim:UInt32}`)
	if err != nil {
		return nil, fmt.Errorf("track buckets: %w", err)
	}
	defer rows.Close()
	var lastOfRange TrackPoint
	for rows.Next() {
		var (
			b                      int64
			first, last            TrackPoint
			flat, flon, llat, llon int32
		)
		if err := rows.Scan(&b, &first.Time, &flat, &flon, &first.SpeedKmh, &first.HeadingDeg,
			&last.Time, &llat, &llon, &last.SpeedKmh, &last.HeadingDeg); err != nil {
			return nil, fmt.Errorf("track buckets: %w", err)
		}
		if len(out.Points) == limit {
			out.NextCursor = cur.encode()
			break
		}
		first.Time, last.Time = first.Time.UTC(), last.Time.UTC()
		first.Lat, first.Lon = float64(flat)/1e6, float64(flon)/1e6
		last.Lat, last.Lon = float64(llat)/1e6, float64(llon)/1e6
		out.Points = append(out.Points, first)
		lastOfRange = last
		cur.Bucket = b
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("track buckets: %w", err)
	}
	if out.NextCursor == "" && len(out.Points) > 0 && !lastOfRange.Time.Equal(out.Points[len(out.Points)-1].Time) {
		out.Points = append(out.Points, lastOfRange)
	}
	return out, nil
}
