package owner_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/minecart/minecart/services/owner"
)

// testMarks: v-4's minute (one sample a second) holds a harsh brake over
// three samples (0.51 g at 50 km/h), a brake as hard at 5 km/h (below the
// rules' 10 km/h: no mark), a mild acceleration (no mark), a harsh corner
// (0.46 g at 40 km/h) and 16 s at 80 km/h under a 50 km/h limit, with a
// 2 s gap inside (still one stretch: gaps up to MarkGap join).
func testMarks(t *testing.T, e env, conn driver.Conn) {
	start := base.Add(time.Hour)
	var rows [][]any
	for i := range 60 {
		speed, alon, alat, limit := float32(50), float32(0), float32(0), f32(50)
		switch {
		case i >= 10 && i <= 12:
			alon = -5
		case i == 20:
			speed, alon = 5, -5
		case i == 25:
			alon = 2
		case i == 30:
			speed, alat = 40, -4.5
		case i >= 40 && i <= 55 && i != 47 && i != 48:
			speed = 80
		}
		rows = append(rows, []any{"v-4", start.Add(time.Duration(i) * time.Second), "d-4", uint64(i + 1), fmt.Sprintf("m-%d", i),
			"UTC", int32(31_200_000 + i*100), int32(121_400_000), f32(0.9), speed, float32(0), alon, alat, limit,
			uint64(1000 + i*14), true, (*float32)(nil), (*float32)(nil), (*float32)(nil), []string{}, "t", int32(3), int64(i)})
	}
	send(t, conn, telemetryInsert, rows)

	q := url.Values{"from": {start.Format(time.RFC3339)}, "to": {start.Add(time.Minute).Format(time.RFC3339)}}
	var m owner.Marks
	if code := e.get(t, "/v1/vehicles/v-4/marks?"+q.Encode(), &m); code != 200 {
		t.Fatalf("status %d", code)
	}
	type got struct {
		kind    string
		start   int
		samples int
	}
	want := []got{{"harsh_brake", 10, 3}, {"harsh_corner", 30, 1}, {"speeding", 40, 14}}
	if len(m.Marks) != len(want) {
		t.Fatalf("marks %+v, want %v", m.Marks, want)
	}
	for i, w := range want {
		g := m.Marks[i]
		if g.Kind != w.kind || !g.Start.Equal(start.Add(time.Duration(w.start)*time.Second)) || g.Samples != w.samples {
			t.Errorf("mark %d: %+v, want %+v", i, g, w)
		}
	}
	if b := m.Marks[0]; b.Peak != 0.51 || b.Lat != 31.201 || b.Lon != 121.4 {
		t.Errorf("harsh brake: peak %v g at %v,%v; want 0.51 g at 31.201,121.4", b.Peak, b.Lat, b.Lon)
	}
	if s := m.Marks[2]; s.Peak != 30 || s.LimitKmh != 50 || !s.End.Equal(start.Add(55*time.Second)) {
		t.Errorf("speeding: %+v, want 30 km/h over 50 until +55s", s)
	}
	if m.Rules == "" {
		t.Error("marks without the rules version")
	}
	// A range with nothing over a threshold; a range too long; an unknown vehicle.
	q = url.Values{"from": {start.Add(-time.Hour).Format(time.RFC3339)}, "to": {start.Format(time.RFC3339)}}
	if code := e.get(t, "/v1/vehicles/v-4/marks?"+q.Encode(), &m); code != 200 || len(m.Marks) != 0 {
		t.Errorf("quiet hour: %d %+v", code, m.Marks)
	}
	q = url.Values{"from": {start.Add(-72 * time.Hour).Format(time.RFC3339)}, "to": {start.Format(time.RFC3339)}}
	if code := e.get(t, "/v1/vehicles/v-4/marks?"+q.Encode(), nil); code != 400 {
		t.Errorf("72 h range: %d, want 400", code)
	}
	if code := e.get(t, "/v1/vehicles/v-9/marks", nil); code != 404 {
		t.Errorf("unknown vehicle: %d, want 404", code)
	}
}
