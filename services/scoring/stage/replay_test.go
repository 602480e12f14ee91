package stage

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestStageReplayAcrossRestart runs scoring on a real broker: day 1 closes
// with honest drives, the stage stops, and after a restart (fingerprints
// rebuilt from the changelog) a box that re-sends another vehicle's day-1
// drive on day 2 (shifted, every other sample, GPS noise) and one that
// re-sends its own have their day-2 scores flagged replayed_trace and paid
// 0; honest day-2 drives of the same vehicles are paid.
func TestStageReplayAcrossRestart(t *testing.T) {
	serde := schemas.SingleObject()
	day1 := time.Date(2026, 11, 20, 8, 0, 0, 0, shanghai)
	drive := func(vehicle string, at time.Time, seed uint64) []telemetry.Event {
		r := rand.New(rand.NewPCG(seed, 1))
		tr := scoringtest.NewTrip(vehicle, at, seed)
		for range 40 {
			tr.Drive(60, 20+80*r.Float64())
		}
		return tr.Evs
	}
	copyOf := func(evs []telemetry.Event, vehicle string, shift time.Duration) []telemetry.Event {
		r := rand.New(rand.NewPCG(9, 9))
		var out []telemetry.Event
		for i, e := range evs {
			if i%2 == 1 {
				continue
			}
			e.VehicleID, e.DeviceID, e.EventID = vehicle, "dev-"+vehicle, e.EventID+"-copy"
			e.TimeMs += shift.Milliseconds()
			e.Lat += (r.Float64()*2 - 1) * 5 / 111320
			e.Lon += (r.Float64()*2 - 1) * 5 / 95000
			out = append(out, e)
		}
		return out
	}
	encode := func(evs ...[]telemetry.Event) []kafka.Output {
		var all []telemetry.Event
		for _, e := range evs {
			all = append(all, e...)
		}
		slices.SortStableFunc(all, func(a, b telemetry.Event) int { return int(a.TimeMs - b.TimeMs) })
		out := make([]kafka.Output, len(all))
		for i := range all {
			b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&all[i]))
			if err != nil {
				t.Fatal(err)
			}
			out[i] = kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(all[i].VehicleID), Value: b}
		}
		return out
	}
	vehicles := []string{"alice", "bob", "carol", "dave"}
	// closing: one event per vehicle on a later day closes the days before
	// it on every partition a vehicle is on.
	closing := func(at time.Time) []telemetry.Event {
		var out []telemetry.Event
		for _, v := range append(vehicles, "zed") {
			e := scoringtest.Event(v, at)
			e.TZ, e.DeviceID = "Asia/Shanghai", "dev-"+v
			out = append(out, *e)
		}
		return out
	}
	alice1 := drive("alice", day1, 1)
	bob1 := drive("bob", day1.Add(time.Hour), 2)
	brokers := kafkatest.Broker(t)
	// Every vehicle on one partition, so that the replay of another
	// vehicle's drive is within one task's index (docs: per task).
	cfg := Config{Serde: serde, IdleTimeout: -1, TickEvery: 200 * time.Millisecond, Tasks: 1}
	one := func(recs []kafka.Output) []kafka.Output {
		for i := range recs {
			recs[i].ToPartition, recs[i].Partition = true, 0
		}
		return recs
	}
	kafkatest.Produce(t, brokers, one(encode(alice1, bob1, closing(day1.AddDate(0, 0, 1).Add(3*time.Hour))))...)
	st, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop := kafkatest.Run(t, kafkatest.Config(brokers), st)
	scoresByID(t, brokers, serde, 2)
	time.Sleep(time.Second) // let the changelog commit settle
	stop()

	day2 := day1.AddDate(0, 0, 1)
	kafkatest.Produce(t, brokers, one(encode(
		copyOf(alice1, "carol", 24*time.Hour+90*time.Minute), // carol re-sends alice's drive
		copyOf(bob1, "bob", 26*time.Hour),                    // bob re-sends his own
		drive("alice", day2.Add(5*time.Hour), 3),             // honest
		drive("dave", day2, 4),                               // honest
		closing(day2.AddDate(0, 0, 1).Add(3*time.Hour)),
	))...)
	st2, err := NewStage(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stop = kafkatest.Run(t, kafkatest.Config(brokers), st2)
	defer stop()
	scores, _ := scoresByID(t, brokers, serde, 7)
	for id, replayed := range map[string]bool{
		"alice/2026-11-20": false, "bob/2026-11-20": false,
		"carol/2026-11-21": true, "bob/2026-11-21": true, "alice/2026-11-21": false, "dave/2026-11-21": false,
	} {
		s, ok := scores[id]
		if !ok {
			t.Fatalf("no score %s", id)
		}
		if slices.Contains(s.Flags, scoring.FlagReplay) != replayed || (s.Points == 0) != replayed {
			t.Errorf("%s: flags %v (%s), points %d; replayed %v", id, s.Flags, strings.Join(s.FlagReasons, "; "), s.Points, replayed)
		}
		if s.DistanceKm < 5 {
			t.Errorf("%s: %.1f km", id, s.DistanceKm)
		}
	}
}
