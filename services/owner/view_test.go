package owner_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// viewEvent is an event of the equivalence test's fleet.
func viewEvent(vehicle, device string, ms int64, seq uint64) telemetry.Event {
	return telemetry.Event{EventID: fmt.Sprintf("%s-%d", device, seq), DeviceID: device, VehicleID: vehicle, Seq: seq, TimeMs: ms,
		TZ: "Europe/Berlin", Lat: 48.1 + float64(seq)*0.000123, Lon: 11.5 - float64(seq)*0.0000771, HDOP: 0.7 + float64(seq%5)/10,
		SpeedKmh: float64(seq%131) * 0.97, HeadingDeg: float64(seq*7%3600) / 10, OdometerKm: 1000 + float64(seq)*0.0351,
		EngineOn: seq%9 != 0, FuelPct: -1, CoolantC: -273}
}

func viewScore(vehicle string, date time.Time, points int64) *avro.DailyScore {
	d := date.Format(time.DateOnly)
	s := &avro.DailyScore{ID: vehicle + "/" + d, VehicleID: vehicle, DeviceID: "d-" + vehicle, Date: d, TZ: "Europe/Berlin",
		WindowStart: date.Add(-time.Hour), WindowEnd: date.Add(23 * time.Hour), ConfigVersion: "v3", DistanceKm: 12.345678 + float64(points),
		GpsKm: 12.3 + float64(points)/7, OdometerKm: 12.9, DrivingS: 3600 + points, HarshBrake: int32(points % 3), HarshAccel: 1, HarshCorner: 2,
		SpeedingS: 30, NightS: 0, FatigueEvents: 0, Events: 360 + points, GpsJumps: 0, HDOPRejected: 3, OdometerRollbacks: 0,
		Score: 71.123456789 + float64(points), Points: points, EventsHash: []byte{1, 2, 3}}
	if points%4 == 0 {
		l := points % 7
		s.LateEvents = &l
	}
	if points%5 == 0 {
		s.Flags, s.FlagReasons = []string{"gps_jump"}, []string{"a jump of 3 km in 2 s"}
	}
	return s
}

// TestViewMatchesClickHouse runs the owner API twice over the same data,
// once with the in-memory view and once with ClickHouse alone, and wants
// every answer byte for byte the same (status and body, every page). The
// data goes through Kafka into both: the real sink stage lands
// minecart.telemetry.clean and minecart.scores in ClickHouse, a Feed
// follows the same topics with read_committed readers. It has late and
// out-of-order events, a repeated event key with new values (ClickHouse
// merged with OPTIMIZE FINAL first), two devices of one vehicle at the same
// instants, a rescored day, days before the view's window (answered by
// ClickHouse through the view's miss), vehicles with scores but no
// telemetry, and paging of raw and downsampled tracks and of reports.
func TestViewMatchesClickHouse(t *testing.T) {
	brokers := kafkatest.Broker(t)
	srv := chtest.Start(t)
	conn := connect(t, srv)
	serde := schemas.SingleObject()
	codec, err := wire.NewCodec(serde)
	if err != nil {
		t.Fatal(err)
	}

	// The fleet. now is 2026-11-21 12:00; the view keeps the tracks of
	// 11-14 .. 11-21 and the scores of 10-22 .. 11-21.
	var recs []kafka.Output
	tele := func(ev telemetry.Event) {
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(ev.VehicleID), Value: codec.AppendEvent(nil, &ev)})
	}
	rng := rand.New(rand.NewPCG(7, 9))
	day20 := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)
	// view-a: 11-20 21:00 .. 11-21 06:00, one event every 10 s (3,240),
	// the first 3,000 in order; of the last 240 every 6th held back and
	// appended at the end (late), the rest shuffled (out of order).
	var held, tail []telemetry.Event
	for i := range 3240 {
		ev := viewEvent("view-a", "dev-a", day20.Add(21*time.Hour).UnixMilli()+int64(i)*10_000, uint64(i+1))
		switch {
		case i < 3000:
			tele(ev)
		case i%6 == 0:
			held = append(held, ev)
		default:
			tail = append(tail, ev)
		}
	}
	rng.Shuffle(len(tail), func(i, j int) { tail[i], tail[j] = tail[j], tail[i] })
	for _, ev := range append(tail, held...) {
		tele(ev)
	}
	// A repeated key (same time, device, seq) with new values: the last wins.
	again := viewEvent("view-a", "dev-a", day20.Add(21*time.Hour).UnixMilli()+100*10_000, 101)
	again.Lat, again.SpeedKmh = 48.5, 12.25
	tele(again)
	// view-b: a day before the window (11-10) and one in it (11-19).
	for i := range 50 {
		tele(viewEvent("view-b", "dev-b", time.Date(2026, 11, 10, 9, 0, 0, 0, time.UTC).UnixMilli()+int64(i)*60_000, uint64(i+1)))
		tele(viewEvent("view-b", "dev-b", time.Date(2026, 11, 19, 9, 0, 0, 0, time.UTC).UnixMilli()+int64(i)*60_000, uint64(100+i)))
	}
	// view-c: two devices reporting at the same instants, HDOP unknown on
	// some, a negative odometer (stored as 0).
	for i := range 40 {
		for _, dev := range []string{"dev-c2", "dev-c1"} {
			ev := viewEvent("view-c", dev, time.Date(2026, 11, 21, 7, 0, 0, 0, time.UTC).UnixMilli()+int64(i)*30_000, uint64(i+1))
			if i%3 == 0 {
				ev.HDOP = 0
			}
			if i == 39 {
				ev.OdometerKm = -2
			}
			tele(ev)
		}
	}
	// view-e: only old telemetry (11-01): known to ClickHouse, not to the view.
	tele(viewEvent("view-e", "dev-e", time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC).UnixMilli(), 1))
	score := func(s *avro.DailyScore) {
		v, err := serde.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(s.VehicleID), Value: v})
	}
	for d := range 40 { // view-a: 10-12 .. 11-20
		score(viewScore("view-a", day20.AddDate(0, 0, -d), int64(d)))
	}
	score(viewScore("view-a", day20.AddDate(0, 0, -3), 99)) // rescored
	// view-a 11-15 re-scored after late data: revisions 1 and 2, then a
	// stray copy of revision 1 at a higher offset: revision 2 stays current.
	revised := func(rev int32, points, late int64) *avro.DailyScore {
		s := viewScore("view-a", day20.AddDate(0, 0, -5), points)
		s.Revision, s.LateAdded, s.ReleaseMs = rev, late, day20.Add(time.Duration(rev)*time.Hour).UnixMilli()
		return s
	}
	score(revised(1, 120, 17))
	score(revised(2, 111, 23))
	score(revised(1, 120, 17))
	wm, err := serde.Marshal(&avro.Watermark{Task: 0, Tasks: 1, ClosedThroughMs: day20})
	if err != nil {
		t.Fatal(err)
	}
	recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte("wm/0"), Value: wm})
	score(viewScore("view-d", day20.AddDate(0, 0, -1), 5)) // scores, no telemetry
	score(viewScore("view-b", day20.AddDate(0, 0, -1), 8))
	kafkatest.Produce(t, brokers, recs...)

	// ClickHouse through the sink; the view through a feed.
	st, err := sink.NewStage(sink.Config{Conn: conn, Inputs: []string{pipelines.TopicTelemetryClean, pipelines.TopicScores},
		Serde: serde, Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	kafkatest.RunSink(t, kafkatest.Config(brokers), st)
	v := view.New(view.Config{})
	reg := prometheus.NewRegistry()
	feed, err := owner.NewFeed(owner.FeedConfig{View: v, Serde: serde, Registerer: reg, Logger: kafkatest.Logger(), Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	follow(t, brokers, feed)
	// The sink has landed every record when its offsets reach the ends.
	ends := map[string]map[int32]int64{}
	{
		rd, err := kafka.NewReader(kafkatest.Config(brokers))
		if err != nil {
			t.Fatal(err)
		}
		for _, topic := range []string{pipelines.TopicTelemetryClean, pipelines.TopicScores} {
			if ends[topic], err = rd.Ends(context.Background(), topic); err != nil {
				t.Fatal(err)
			}
		}
		rd.Close()
	}
	waitFor(t, "the sink", func() bool {
		rows, err := conn.Query(context.Background(), "SELECT topic, partition, max(max_offset) FROM sink_offsets GROUP BY topic, partition")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		done := 0
		for rows.Next() {
			var topic string
			var p int32
			var off int64
			if err := rows.Scan(&topic, &p, &off); err != nil {
				t.Fatal(err)
			}
			if e, ok := ends[topic][p]; ok && off >= e-1 {
				done++
			}
		}
		want := 0
		for _, topic := range []string{pipelines.TopicTelemetryClean, pipelines.TopicScores} {
			for _, e := range ends[topic] {
				if e > 0 {
					want++
				}
			}
		}
		return done == want
	})
	if err := conn.Exec(context.Background(), "OPTIMIZE TABLE telemetry FINAL"); err != nil {
		t.Fatal(err)
	}
	rd, err := kafka.NewReader(kafkatest.Config(brokers))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	waitFor(t, "the view", func() bool {
		for _, topic := range []string{pipelines.TopicTelemetryClean, pipelines.TopicScores} {
			ends, err := rd.Ends(context.Background(), topic)
			if err != nil {
				t.Fatal(err)
			}
			if feed.Lag(topic, ends) > 0 {
				return false
			}
		}
		return v.Caught()
	})

	c := testAuth(t)
	serve := func(vw *view.View, reg prometheus.Registerer) *httptest.Server {
		h, err := owner.NewHandler(owner.Config{Conn: conn, Auth: c.auth, View: vw, Registerer: reg,
			Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		s := httptest.NewServer(h)
		t.Cleanup(s.Close)
		return s
	}
	withView, plain := serve(v, reg), serve(nil, nil)

	get := func(base, path string) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+c.operator)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// same fetches path and every next page from both servers and wants
	// equal answers; it returns the number of pages and the first body.
	same := func(path string) (int, string) {
		t.Helper()
		pages, first := 0, ""
		for p := path; ; pages++ {
			c1, b1 := get(withView.URL, p)
			c2, b2 := get(plain.URL, p)
			if c1 != c2 || b1 != b2 {
				t.Fatalf("%s:\nview       %d %s\nclickhouse %d %s", p, c1, trunc(b1), c2, trunc(b2))
			}
			if pages == 0 {
				first = b1
			}
			var next struct {
				NextCursor string `json:"next_cursor"`
			}
			if c1 != http.StatusOK || json.Unmarshal([]byte(b1), &next) != nil || next.NextCursor == "" {
				return pages + 1, first
			}
			sep := "?"
			if strings.Contains(path, "?") {
				sep = "&"
			}
			p = path + sep + "cursor=" + url.QueryEscape(next.NextCursor)
		}
	}
	hits := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var n float64
		for _, mf := range mfs {
			if mf.GetName() != "minecart_owner_view_requests_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "result" && l.GetValue() == "hit" {
						n += m.GetCounter().GetValue()
					}
				}
			}
		}
		return n
	}
	rfc := func(t time.Time) string { return url.QueryEscape(t.Format(time.RFC3339)) }
	track := func(vin string, from, to time.Time, extra string) string {
		return fmt.Sprintf("/v1/vehicles/%s/track?from=%s&to=%s%s", vin, rfc(from), rfc(to), extra)
	}

	for _, tc := range []struct {
		name, path string
		hits       int // pages the view answers (-1: every page)
		wantPages  int // 0: any
		wantIn     string
	}{
		{"position", "/v1/vehicles/view-a/position", -1, 1, `"lat":48.`},
		{"position of two devices at the same instants", "/v1/vehicles/view-c/position", -1, 1, `"odometer_km":0`},
		{"position of old telemetry only (the view saw it)", "/v1/vehicles/view-e/position", -1, 1, `"vehicle_id":"view-e"`},
		{"position of a vehicle without telemetry (404 from ClickHouse)", "/v1/vehicles/view-d/position", 0, 1, `"error"`},
		{"position of an unknown vehicle", "/v1/vehicles/nobody/position", 0, 1, `"error"`},
		{"track default range (the last 24 h)", "/v1/vehicles/view-a/track?max_points=10000", -1, 4, `"events_in_range":3240`},
		{"track across midnight, late and out of order, raw pages of 250", track("view-a", day20.Add(20*time.Hour), day20.Add(30*time.Hour), "&max_points=5000&limit=250"), -1, 13, `"events_in_range":3240`},
		{"track downsampled, pages of 40", track("view-a", day20, day20.AddDate(0, 0, 2), "&max_points=300&limit=40"), -1, 0, `"downsampled":true`},
		{"track downsampled, one page", track("view-a", day20.Add(21*time.Hour), day20.Add(22*time.Hour), "&max_points=17"), -1, 1, `"bucket_ms":225000`},
		{"track of two devices at the same instants, pages of 7", track("view-c", day20, day20.AddDate(0, 0, 2), "&limit=7"), -1, 12, `"events_in_range":80`},
		{"track of a day with nothing", track("view-a", day20.AddDate(0, 0, -2), day20.AddDate(0, 0, -1), ""), -1, 1, `"points":[]`},
		{"track in the window of view-b", track("view-b", day20.AddDate(0, 0, -1), day20, "&limit=20"), -1, 3, `"events_in_range":50`},
		{"track before the window (view miss)", track("view-b", time.Date(2026, 11, 10, 0, 0, 0, 0, time.UTC), time.Date(2026, 11, 11, 0, 0, 0, 0, time.UTC), ""), 0, 1, `"events_in_range":50`},
		{"track of old telemetry only, window range (empty)", track("view-e", day20, day20.AddDate(0, 0, 1), ""), -1, 1, `"points":[]`},
		{"track of an unknown vehicle", track("nobody", day20, day20.AddDate(0, 0, 1), ""), 0, 1, `"error"`},
		{"reports, 30 days, pages of 4", "/v1/vehicles/view-a/reports?limit=4", -1, 8, `"late_events":0`},
		{"reports, 30 days", "/v1/vehicles/view-a/reports", -1, 1, `"points":99`},
		{"reports: a re-scored day's latest revision and why", "/v1/vehicles/view-a/reports?from=2026-11-15&to=2026-11-15", -1, 1,
			`"revision":2,"late_added":23,"revision_reason":"re-scored after the day closed: revision 2, 111 points, rules v3; 23 events arrived late"`},
		{"reports of a vehicle without telemetry", "/v1/vehicles/view-d/reports", -1, 1, `"vehicle_id":"view-d"`},
		{"reports before the kept dates (view miss; the second page starts in them)", "/v1/vehicles/view-a/reports?from=2026-10-12&to=2026-11-20", 1, 2, `"flags":["gps_jump"]`},
		{"reports of a vehicle with none in range", "/v1/vehicles/view-c/reports", -1, 1, `"reports":[]`},
		{"reports of old telemetry only", "/v1/vehicles/view-e/reports", -1, 1, `"reports":[]`},
		{"reports of an unknown vehicle", "/v1/vehicles/nobody/reports", 0, 1, `"error"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h0 := hits()
			pages, body := same(tc.path)
			if tc.wantPages != 0 && pages != tc.wantPages {
				t.Errorf("%d pages, want %d", pages, tc.wantPages)
			}
			if !strings.Contains(body, tc.wantIn) {
				t.Errorf("first page lacks %s: %s", tc.wantIn, trunc(body))
			}
			want := tc.hits
			if want < 0 {
				want = pages
			}
			if got := hits() - h0; got != float64(want) {
				t.Errorf("view hits %v for %d pages, want %d", got, pages, want)
			}
		})
	}
}

func trunc(s string) string {
	if len(s) > 600 {
		return s[:600] + "..."
	}
	return s
}

// follow runs the feed (Feed.Run) until the test ends.
func follow(t testing.TB, brokers []string, feed *owner.Feed) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- feed.Run(ctx, func() (owner.TopicReader, error) { return kafka.NewReader(kafkatest.Config(brokers)) }, 100*time.Millisecond)
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("feed: %v", err)
		}
	})
}

func waitFor(t testing.TB, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting for %s: timed out", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
