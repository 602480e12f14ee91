package owner_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// viewServer is the owner API with its in-memory view, for
// BenchmarkOwnerAPI's concurrent_32.
type viewServer struct {
	view  *view.View
	srv   *httptest.Server
	reg   *prometheus.Registry
	fill  time.Duration // from the feed's start to caught up with no lag
	close func()
}

// hits sums minecart_owner_view_requests_total by result.
func (vs *viewServer) hits() string {
	mfs, _ := vs.reg.Gather()
	by := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "minecart_owner_view_requests_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" {
					by[l.GetValue()] += m.GetCounter().GetValue()
				}
			}
		}
	}
	var out []string
	for k, v := range by {
		out = append(out, fmt.Sprintf("%s %.0f", k, v))
	}
	sort.Strings(out)
	return strings.Join(out, ", ")
}

// benchEvent is row r of benchTelemetry as the telemetry event the sink
// would have written it from (the same values, column for column).
func benchEvent(r int64) telemetry.Event {
	V, pd := int64(benchVehicles), perDay()
	v, k := r%V, r/V
	d, j := k/pd, k%pd
	latE6 := 45000000 + (v%100)*80000 + j*40
	lonE6 := 5000000 + (v/100)*80000 + j*25
	return telemetry.Event{EventID: "", DeviceID: fmt.Sprintf("dev-%d", v), VehicleID: fmt.Sprintf("veh-%06d", v), Seq: uint64(k + 1),
		TimeMs: benchStart.UnixMilli() + (d*86400+25200+v%3600+j*5)*1000, TZ: "Europe/Berlin",
		Lat: float64(latE6) / 1e6, Lon: float64(lonE6) / 1e6, HDOP: 0.8 + float64(k%7)/10,
		SpeedKmh: float64((k * 7) % 130), HeadingDeg: float64((k * 13) % 360),
		AccelLonMS2: float64((k*31)%90)/10 - 4.5, AccelLatMS2: float64((k*17)%60)/10 - 3, SpeedLimitKmh: float64(50 + (v%4)*20),
		OdometerKm: float64(v*1000+k*35) / 1000, EngineOn: true, FuelPct: 90 - float64(j)/10, BatteryV: 12.4 + float64(k%5)/10,
		CoolantC: float64(85 + k%10)}
}

// benchScore is row n of benchScores as the DailyScore it would come from.
func benchScore(n int64) *avro.DailyScore {
	V := int64(benchVehicles)
	v, d := n%V, n/V
	date := benchStart.AddDate(0, 0, int(d))
	vid := fmt.Sprintf("veh-%06d", v)
	s := &avro.DailyScore{ID: vid + "/" + date.Format(time.DateOnly), VehicleID: vid, DeviceID: fmt.Sprintf("dev-%d", v),
		Date: date.Format(time.DateOnly), TZ: "Europe/Berlin", WindowStart: date, WindowEnd: date.AddDate(0, 0, 1), ConfigVersion: "v1",
		DistanceKm: float64(40 + (v+d)%60), GpsKm: float64(41 + (v+d)%60), OdometerKm: 40.5 + float64((v+d)%60),
		DrivingS: 3600 + (v*d)%3000, HarshBrake: int32((v + d) % 3), HarshAccel: int32((v + d) % 2), HarshCorner: int32((v * d) % 4),
		SpeedingS: (v + d) % 120, Events: 1600, Score: 0.5 + float64((v+d)%50)/100, Points: 40 + (v+d)%60}
	if (v+d)%97 == 0 {
		s.Flags, s.FlagReasons = []string{"gps_jump"}, []string{"jump"}
	}
	return s
}

// startView writes the telemetry of the days trackDay .. lastDay (rows of
// day trackDay up to loaded: the last full day and the last, maybe
// partial, one) to minecart.telemetry.clean and the 300,000 daily scores
// to minecart.scores on an embedded broker, then starts a view keeping
// those days only (LateDays lastDay - trackDay, to keep the broker's memory
// small; the request path is the same for any window) with a Feed following both
// topics, waits until it has caught up, serves the owner API with it and
// checks its answers against ClickHouse's (chURL) on 90 requests.
func startView(b *testing.B, loaded, trackDay, lastDay int64, clock time.Time, conn clickhouse.Conn, callers callers, chURL string) *viewServer {
	brokers := kafkatest.StartBroker(b, "")
	addrs := brokers.Addrs()
	serde := schemas.SingleObject()
	codec, err := wire.NewCodec(serde)
	if err != nil {
		b.Fatal(err)
	}
	p, err := kafka.NewProducer(kafka.Config{Brokers: addrs, Logger: kafkatest.Logger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	t0 := time.Now()
	from := trackDay * perDay() * int64(benchVehicles)
	const chunk = 20_000
	recs := make([]kafka.Output, 0, chunk)
	flush := func() {
		if err := p.ProduceBatch(ctx, recs); err != nil {
			b.Fatal(err)
		}
		recs = recs[:0]
	}
	for r := from; r < loaded; r++ {
		ev := benchEvent(r)
		recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(ev.VehicleID), Value: codec.AppendEvent(nil, &ev)})
		if len(recs) == chunk {
			flush()
		}
	}
	for n := range int64(benchVehicles * benchDays) {
		v, err := serde.Marshal(benchScore(n))
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicScores, Key: []byte(fmt.Sprintf("veh-%06d", n%int64(benchVehicles))), Value: v})
		if len(recs) == chunk {
			flush()
		}
	}
	flush()
	p.Close()
	b.Logf("owner view: wrote %d telemetry events and %d scores to Kafka in %s", loaded-from, benchVehicles*benchDays, time.Since(t0).Round(time.Millisecond))

	late := int(lastDay - trackDay)
	if late == 0 {
		late = -1 // today only
	}
	v := view.New(view.Config{LateDays: late, ReportDays: max(31, int(lastDay)+1)})
	reg := prometheus.NewRegistry()
	feed, err := owner.NewFeed(owner.FeedConfig{View: v, Serde: serde, Registerer: reg, Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	v.MarkErasuresCaught() // the benchmark's data holds no erasure
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 2)
	var readers []*kafka.Reader
	t1 := time.Now()
	for _, x := range []struct {
		topic  string
		fn     func(pipelines.Record) error
		caught func()
	}{{pipelines.TopicTelemetryClean, feed.Telemetry, feed.TelemetryCaught}, {pipelines.TopicScores, feed.Scores, feed.ScoresCaught}} {
		rd, err := kafka.NewReader(kafkatest.Config(addrs))
		if err != nil {
			b.Fatal(err)
		}
		readers = append(readers, rd)
		go func() { done <- rd.Follow(rctx, x.topic, x.fn, x.caught) }()
	}
	ends, err := kafka.NewReader(kafkatest.Config(addrs))
	if err != nil {
		b.Fatal(err)
	}
	for {
		lag := int64(0)
		for _, topic := range []string{pipelines.TopicTelemetryClean, pipelines.TopicScores} {
			e, err := ends.Ends(ctx, topic)
			if err != nil {
				b.Fatal(err)
			}
			lag += feed.Lag(topic, e)
		}
		if lag == 0 && v.Caught() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ends.Close()
	vs := &viewServer{view: v, reg: reg, fill: time.Since(t1)}
	h, err := owner.NewHandler(owner.Config{Conn: conn, Auth: callers.auth, View: v, Registerer: reg,
		Logger: slog.New(slog.DiscardHandler), Now: func() time.Time { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	vs.srv = httptest.NewServer(h)
	vs.close = func() {
		vs.srv.Close()
		cancel()
		for range readers {
			if err := <-done; err != nil {
				b.Errorf("follow: %v", err)
			}
		}
		for _, rd := range readers {
			rd.Close()
		}
		brokers.Close()
	}

	// The view answers what ClickHouse answers, on this data too.
	rng := rand.New(rand.NewPCG(5, 6))
	d := benchStart.AddDate(0, 0, int(trackDay))
	for i := range 90 {
		vin := fmt.Sprintf("veh-%06d", rng.IntN(benchVehicles))
		path := [...]string{
			"/v1/vehicles/" + vin + "/position",
			fmt.Sprintf("/v1/vehicles/%s/track?from=%s&to=%s&limit=1000", vin, d.Format(time.RFC3339), d.AddDate(0, 0, 1).Format(time.RFC3339)),
			fmt.Sprintf("/v1/vehicles/%s/reports?from=%s&to=%s", vin, benchStart.Format(time.DateOnly), benchStart.AddDate(0, 0, benchDays-1).Format(time.DateOnly)),
		}[i%3]
		a, err1 := body(vs.srv.URL+path, callers.operator)
		c, err2 := body(chURL+path, callers.operator)
		if err1 != nil || err2 != nil || a != c {
			b.Fatalf("%s: the view and ClickHouse differ:\nview       %v %s\nclickhouse %v %s", path, err1, trunc(a), err2, trunc(c))
		}
	}
	b.Logf("owner view: caught up in %s; 90 answers equal to ClickHouse's; %s", vs.fill.Round(time.Millisecond), vs.hits())
	return vs
}

// body GETs url and returns the body of a 200.
func body(url, token string) (string, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := benchClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return string(b), fmt.Errorf("status %d", resp.StatusCode)
	}
	return string(b), nil
}
