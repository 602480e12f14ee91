package owner_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/services/owner"
)

// testTrips: v-5 (in Asia/Shanghai, UTC+8) drives on its local 3 November
// a trip of 10 samples a minute apart (4.5 km), a second one after a
// 10-minute gap, and a third after a sample with the engine off only a
// minute later; and on its local 5 November (still 4 November in UTC) a
// fourth trip. One sample is stored twice (a sink replay): it counts once.
func testTrips(t *testing.T, e env, conn driver.Conn) {
	var rows [][]any
	seq, odo := 0, uint64(100_000)
	sample := func(at time.Time, engine bool, step uint64) {
		seq++
		odo += step
		rows = append(rows, []any{"v-5", at, "d-5", uint64(seq), fmt.Sprintf("t-%d", seq), "Asia/Shanghai",
			int32(31_200_000), int32(121_400_000), f32(0.9), float32(40), float32(0), float32(0), float32(0), f32(50),
			odo, engine, (*float32)(nil), (*float32)(nil), (*float32)(nil), []string{}, "t", int32(5), int64(seq)})
	}
	a := time.Date(2026, 11, 2, 23, 0, 0, 0, time.UTC) // 07:00 on the 3rd in Shanghai
	for i := range 10 {
		sample(a.Add(time.Duration(i)*time.Minute), true, map[bool]uint64{true: 0, false: 500}[i == 0])
	}
	b := a.Add(19 * time.Minute) // 10 minutes after a's last sample
	for i := range 5 {
		sample(b.Add(time.Duration(i)*time.Minute), true, 200)
	}
	sample(b.Add(5*time.Minute), false, 0)
	for i := range 3 {
		sample(b.Add(time.Duration(6+i)*time.Minute), true, 100)
	}
	rows = append(rows, rows[len(rows)-1])              // stored twice
	d := time.Date(2026, 11, 4, 16, 30, 0, 0, time.UTC) // 00:30 on the 5th in Shanghai
	for i := range 4 {
		sample(d.Add(time.Duration(i)*time.Minute), true, 300)
	}
	send(t, conn, telemetryInsert, rows)

	get := func(by string) owner.Trips {
		t.Helper()
		q := url.Values{"from": {"2026-11-01T00:00:00Z"}, "to": {"2026-11-10T00:00:00Z"}, "by": {by}}
		var tr owner.Trips
		if code := e.get(t, "/v1/vehicles/v-5/trips?"+q.Encode(), &tr); code != 200 {
			t.Fatalf("by %s: status %d", by, code)
		}
		return tr
	}
	day := get("day")
	want := []owner.TripPeriod{{Start: "2026-11-03", Trips: 3, Km: 4.5 + 0.8 + 0.2, DrivingS: 9*60 + 4*60 + 2*60}, {Start: "2026-11-05", Trips: 1, Km: 0.9, DrivingS: 3 * 60}}
	if day.TZ != "Asia/Shanghai" || day.GapS != 300 || day.Trips != 4 || fmt.Sprint(day.Periods) != fmt.Sprint(want) {
		t.Errorf("by day: %+v, want tz Asia/Shanghai, gap 300 s, 4 trips, periods %+v", day, want)
	}
	if w := get("week"); w.Trips != 4 || len(w.Periods) != 1 || w.Periods[0].Start != "2026-11-02" || w.Periods[0].Trips != 4 {
		t.Errorf("by week: %+v, want 4 trips in the week of Monday 2026-11-02", w)
	}
	if m := get("month"); m.Trips != 4 || len(m.Periods) != 1 || m.Periods[0].Start != "2026-11-01" {
		t.Errorf("by month: %+v, want 4 trips in 2026-11", m)
	}
	for q, code := range map[string]int{"by=year": 400, "from=2026-01-01T00:00:00Z&to=2026-11-01T00:00:00Z": 400} {
		if got := e.get(t, "/v1/vehicles/v-5/trips?"+q, nil); got != code {
			t.Errorf("trips?%s: status %d, want %d", q, got, code)
		}
	}
	if got := e.get(t, "/v1/vehicles/v-unknown/trips", nil); got != 404 {
		t.Errorf("unknown vehicle: status %d, want 404", got)
	}
}
