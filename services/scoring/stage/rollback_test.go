package stage

import (
	"slices"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ingest"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// TestStageRollbackThroughIngest runs ingest and scoring on a real broker:
// a box whose odometer is rolled back overnight (the reading before the
// rollback is in the previous day, so only ingest's mark can tell) and one
// rolled back mid-day have those days flagged odometer_rollback, paid 0,
// with their driving still in the record; the days around them are paid;
// every event reaches the clean topic (nothing dead-lettered). An honest box
// whose day arrives in reversed upload batches is never flagged.
func TestStageRollbackThroughIngest(t *testing.T) {
	serde := schemas.SingleObject()
	codec, err := wire.NewCodec(serde)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 20, 7, 0, 0, 0, shanghai)
	var batches [][]telemetry.Event // upload batches, in upload order
	for _, v := range []string{"overnight", "midday", "honest"} {
		tr := scoringtest.NewTrip(v, start, 5)
		tr.PeriodMs = 10000
		for d := range 3 {
			tr.T = start.AddDate(0, 0, d).UnixMilli()
			n := len(tr.Evs)
			switch {
			case v == "overnight" && d == 1:
				tr.Odometer(-4000).Drive(360, 60)
			case v == "midday" && d == 1:
				tr.Drive(180, 60).Odometer(-4000).Drive(180, 60)
			default:
				tr.Drive(360, 60)
			}
			day := tr.Evs[n:]
			if v == "honest" && d == 1 { // four batches uploaded last first
				for i := 3; i >= 0; i-- {
					batches = append(batches, day[i*90:(i+1)*90])
				}
			} else {
				batches = append(batches, day)
			}
		}
		tr.T = start.AddDate(0, 0, 4).UnixMilli() // closes days 0..2 by stream time
		batches = append(batches, tr.Drive(3, 30).Evs[len(tr.Evs)-3:])
	}
	var recs []kafka.Output
	events := 0
	for _, b := range batches {
		for i := range b {
			recs = append(recs, kafka.Output{Topic: pipelines.TopicTelemetryRaw, Key: []byte(b[i].VehicleID),
				Value: codec.AppendEvent(nil, &b[i]), Headers: []pipelines.Header{{Key: "device", Value: []byte(b[i].DeviceID)}}})
			events++
		}
	}
	brokers := kafkatest.Broker(t)
	kafkatest.Produce(t, brokers, recs...)
	now := start.AddDate(0, 0, 4).Add(time.Hour)
	ing, err := ingest.NewStage(ingest.Config{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewStage(Config{Serde: serde, IdleTimeout: -1, TickEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stopIngest := kafkatest.Run(t, kafkatest.Config(brokers), ing)
	defer stopIngest()
	stopScoring := kafkatest.Run(t, kafkatest.Config(brokers), sc)
	defer stopScoring()

	clean := kafkatest.WaitRecords(t, brokers, pipelines.TopicTelemetryClean, events, 30*time.Second)
	marked := 0
	for _, r := range clean {
		if v := r.Header(ingest.HeaderOdometer); v != nil {
			marked++
			if string(r.Key) == "honest" {
				t.Fatalf("honest event marked %q", v)
			}
		}
	}
	if len(clean) != events || marked != 2 {
		t.Fatalf("clean topic: %d records (want %d), %d marked (want 2: the first reading after each rollback)", len(clean), events, marked)
	}
	scores, _ := scoresByID(t, brokers, serde, 9)
	for _, v := range []string{"overnight", "midday", "honest"} {
		for d := range 3 {
			id := v + "/" + start.AddDate(0, 0, d).Format("2006-01-02")
			s, ok := scores[id]
			if !ok {
				t.Fatalf("no score %s", id)
			}
			rolled := v != "honest" && d == 1
			if slices.Contains(s.Flags, scoring.FlagRollback) != rolled || (s.Points == 0) != rolled {
				t.Errorf("%s: flags %v, points %d (rolled back: %v)", id, s.Flags, s.Points, rolled)
			}
			if s.DistanceKm < 59 || s.DrivingS < 3580 {
				t.Errorf("%s: %.2f km, %d s driving: the day's driving must stay in the record", id, s.DistanceKm, s.DrivingS)
			}
			if rolled && s.OdometerRollbacks != 1 {
				t.Errorf("%s: odometer_rollbacks %d, want 1", id, s.OdometerRollbacks)
			}
		}
	}
	if dead, _ := kafkatest.ReadCommitted(t.Context(), brokers, pipelines.TopicDeadLetter); len(dead) != 0 {
		t.Fatalf("%d dead letters", len(dead))
	}
}
