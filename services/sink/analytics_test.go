package sink_test

import (
	"context"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
)

// docQueries reads the named SQL blocks of docs/analytics.md.
func docQueries(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("../../docs/analytics.md")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	re := regexp.MustCompile("(?s)```sql\n-- name: ([a-z_]+)\n(.*?)```")
	for _, m := range re.FindAllStringSubmatch(string(b), -1) {
		out[m[1]] = m[2]
	}
	return out
}

// analyticsData lands a small, fully known fleet through the sink's Writer.
func analyticsData(t *testing.T, conn driver.Conn) {
	t.Helper()
	var recs []pipelines.Record
	add := func(topic string, value []byte) {
		recs = append(recs, pipelines.Record{Topic: topic, Offset: int64(len(recs)), Value: value})
	}
	start := time.Date(2026, 11, 20, 8, 0, 0, 0, time.UTC)
	for v := range 5 {
		for k := range 600 {
			ev := telemetry.Event{
				EventID: fmt.Sprintf("v%d-%d", v, k), DeviceID: fmt.Sprintf("d-%03d", v), VehicleID: fmt.Sprintf("v-%03d", v),
				Seq: uint64(k + 1), TimeMs: start.Add(time.Duration(k) * time.Second).UnixMilli(), TZ: "Europe/Berlin",
				Lat: 52.5200 + float64(v)*1e-4, Lon: 13.4050 + float64(k)*1e-6, HDOP: 0.8, SpeedKmh: 50, HeadingDeg: 90,
				SpeedLimitKmh: 50, OdometerKm: 1000 + float64(k)*0.01, EngineOn: true, FuelPct: 60, BatteryV: 12.7, CoolantC: 90,
			}
			if v == 1 && k >= 200 && k < 205 {
				ev.AccelLonMS2 = -5 // five harsh braking samples
			}
			if v == 2 && k >= 100 && k < 130 {
				ev.SpeedKmh = 80 // thirty speeding samples
			}
			if v == 3 && k < 10 {
				ev.FaultCodes = []string{"P0301"}
			} else if v == 3 && k < 15 {
				ev.FaultCodes = []string{"P0301", "P0420"}
			}
			add(pipelines.TopicTelemetryClean, encodeEvent(t, ev))
		}
	}
	leaf := int64(0)
	for d := range 3 {
		date := time.Date(2026, 11, 20+d, 0, 0, 0, 0, time.UTC)
		for v := range 5 {
			vid := fmt.Sprintf("v-%03d", v)
			var flags []string
			if v == 4 && d == 1 {
				flags = []string{"teleport"}
			}
			s := score(vid, date.Format(time.DateOnly), int64(10*(v+1)), flags...)
			s.Score = float64(60 + 10*v)
			s.DistanceKm = float64(10 * (v + 1))
			add(pipelines.TopicScores, encode(t, s))
			add(pipelines.TopicLedgerEntries, encode(t,
				entry(leaf, avro.EntryKindCredit, vid+"/"+date.Format(time.DateOnly), vid, "", int64(10*(v+1)), date.Add(24*time.Hour))))
			leaf++
		}
	}
	// v-000's 11-20 re-scored after late data (revision 1): the cookbook
	// counts it once, with the revision's values.
	rev := score("v-000", "2026-11-20", 12)
	rev.Score, rev.DistanceKm, rev.Revision, rev.LateAdded = 65, 12, 1, 40
	rev.ReleaseMs = time.Date(2026, 11, 21, 3, 15, 0, 0, time.UTC).UnixMilli()
	add(pipelines.TopicScores, encode(t, rev))
	// and a stray copy of revision 0 after it: the revision decides.
	add(pipelines.TopicScores, encode(t, func() *avro.DailyScore {
		s := score("v-000", "2026-11-20", 10)
		s.Score = 60
		s.DistanceKm = 10
		return s
	}()))
	t1 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	add(pipelines.TopicLedgerEntries, encode(t, entry(leaf, avro.EntryKindDebit, "r-1", "", "alice", -50, t1)))
	for i, st := range []avro.RedemptionStatus{avro.RedemptionStatusPending, avro.RedemptionStatusConfirmed, avro.RedemptionStatusFulfilled} {
		r := redemption("r-1", st, 50, t1, -1)
		r.UpdatedMs = t1.Add(time.Duration(i) * time.Minute)
		add(pipelines.TopicRedemptionStatus, encode(t, r))
	}
	for i, st := range []avro.RedemptionStatus{avro.RedemptionStatusPending, avro.RedemptionStatusRejected} {
		r := redemption("r-2", st, 500, t1, -1)
		r.Partner = "coffeeco"
		r.UpdatedMs = t1.Add(time.Duration(i) * time.Minute)
		add(pipelines.TopicRedemptionStatus, encode(t, r))
	}
	if rejected, err := newStage(t, conn, sink.Config{}).Write(context.Background(), recs); err != nil || len(rejected) > 0 {
		t.Fatal(rejected, err)
	}
}

// run executes a doc query with parameters and returns its rows with every
// value formatted by fmt.Sprint (pointers dereferenced, times in UTC).
func run(t *testing.T, conn driver.Conn, sql string, params map[string]string) []map[string]string {
	t.Helper()
	ctx := clickhouse.Context(context.Background(), clickhouse.WithParameters(params))
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		t.Fatalf("%v\n%s", err, sql)
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	var out []map[string]string
	for rows.Next() {
		ptrs := make([]any, len(cts))
		for i, ct := range cts {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		r := map[string]string{}
		for i, ct := range cts {
			v := reflect.ValueOf(ptrs[i]).Elem()
			for v.Kind() == reflect.Pointer && !v.IsNil() {
				v = v.Elem()
			}
			x := v.Interface()
			if tm, ok := x.(time.Time); ok {
				x = tm.UTC().Format("2006-01-02 15:04:05")
			}
			r[ct.Name()] = fmt.Sprint(x)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAnalyticsQueries runs every query of docs/analytics.md on known data.
func TestAnalyticsQueries(t *testing.T) {
	srv, w := migrated(t)
	analyticsData(t, w)
	// The cookbook runs as the readonly analyst: every query of the page
	// passes the embedded server's checks and limits.
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{srv.Addr}, Protocol: clickhouse.HTTP,
		Auth: clickhouse.Auth{Username: srv.Analyst.Name, Password: srv.Analyst.Password}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	qs := docQueries(t)
	days := map[string]string{"from": "2026-11-20", "to": "2026-11-23"}
	window := map[string]string{"from": "2026-11-20 00:00:00", "to": "2026-11-24 00:00:00"}
	type check struct {
		params map[string]string
		rows   int
		want   map[int]map[string]string // row index -> column -> formatted value
	}
	cases := map[string]check{
		"top_drivers": {map[string]string{"from": "2026-11-20", "to": "2026-11-22", "min_days": "3"}, 4, map[int]map[string]string{
			0: {"vehicle_id": "v-003", "days": "3", "avg_score": "90", "km": "120", "points": "120"},
			3: {"vehicle_id": "v-000", "avg_score": "61.7", "km": "32", "points": "32"}}},
		"harsh_heat": {merge(window, map[string]string{"tz": "Europe/Berlin"}), 1, map[int]map[string]string{
			0: {"hour": "9", "harsh_brake": "5", "harsh": "5", "harsh_accel": "0"}}},
		"fleet_mileage": {days, 3, map[int]map[string]string{
			0: {"date": "2026-11-20 00:00:00", "vehicles": "5", "km": "152", "driving_h": "5"},
			2: {"date": "2026-11-22 00:00:00", "km": "150"}}},
		"odometer_mileage": {window, 1, map[int]map[string]string{
			0: {"day": "2026-11-20 00:00:00", "vehicles": "5", "km": "29.95"}}},
		"fraud_flags": {days, 1, map[int]map[string]string{
			0: {"flag": "teleport", "vehicle_days": "1", "vehicles": "1", "examples": "[v-004]"}}},
		"points_flow": {days, 3, map[int]map[string]string{
			0: {"day": "2026-11-21 00:00:00", "minted": "150", "redeemed": "0", "net_running": "150"},
			1: {"day": "2026-11-22 00:00:00", "minted": "150", "redeemed": "50", "net_running": "250"},
			2: {"day": "2026-11-23 00:00:00", "minted": "150", "net_running": "400"}}},
		"vehicle_track": {map[string]string{"vehicle": "v-000", "from": "2026-11-20 08:00:00", "to": "2026-11-20 08:00:10"}, 10, map[int]map[string]string{
			0: {"time": "2026-11-20 08:00:00", "speed_kmh": "50"},
			9: {"time": "2026-11-20 08:00:09"}}},
		"speeding_share": {window, 5, map[int]map[string]string{
			0: {"vehicle_id": "v-002", "speeding": "30", "moving": "600", "pct": "5"},
			1: {"speeding": "0"}}},
		"fault_codes": {window, 2, map[int]map[string]string{
			0: {"code": "P0301", "vehicles": "1", "samples": "15", "last_seen": "2026-11-20 08:00:14"},
			1: {"code": "P0420", "samples": "5"}}},
		"redemption_funnel": {window, 2, map[int]map[string]string{
			0: {"partner": "coffeeco", "status": "REJECTED", "redemptions": "1", "points": "500"},
			1: {"partner": "fuelco", "status": "FULFILLED", "redemptions": "1", "points": "50"}}},
		"fleet_activity": {days, 1, map[int]map[string]string{
			0: {"day": "2026-11-20 00:00:00", "events": "3000", "vehicles": "5", "devices": "5", "harsh": "5", "with_faults": "1"}}},
		"score_distribution": {days, 4, map[int]map[string]string{
			0: {"bucket": "60", "vehicle_days": "3"},
			3: {"bucket": "90", "vehicle_days": "6"}}},
		"sink_freshness": {nil, 1, map[int]map[string]string{
			0: {"newest_event": "2026-11-20 08:09:59", "events_last_minute": "3000"}}},
	}
	if len(qs) < 10 {
		t.Fatalf("docs/analytics.md has %d named queries", len(qs))
	}
	for name, sql := range qs {
		c, ok := cases[name]
		if !ok {
			t.Errorf("query %s of docs/analytics.md has no check here", name)
			continue
		}
		t.Run(name, func(t *testing.T) {
			got := run(t, conn, sql, c.params)
			if len(got) != c.rows {
				t.Fatalf("%d rows, want %d: %v", len(got), c.rows, got)
			}
			for i, cols := range c.want {
				for col, want := range cols {
					if got[i][col] != want {
						t.Errorf("row %d %s = %q, want %q (row %v)", i, col, got[i][col], want, got[i])
					}
				}
			}
		})
	}
	for name := range cases {
		if _, ok := qs[name]; !ok {
			t.Errorf("check %s has no query in docs/analytics.md", name)
		}
	}
}

func merge(a, b map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		out[k] = v
	}
	return out
}
