package stage_test

import (
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	replaycheck "github.com/minecart/minecart/services/replaycheck/stage"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/replay"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	scoringstage "github.com/minecart/minecart/services/scoring/stage"
	"github.com/minecart/minecart/services/telemetry"
)

var shanghai, _ = time.LoadLocation("Asia/Shanghai")

// partitionOf is the clean topic's partition of a vehicle (Kafka's murmur2).
func partitionOf(vehicle string) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic(pipelines.TopicTelemetryClean).
		Partition(&kgo.Record{Key: []byte(vehicle)}, pipelines.TelemetryPartitions))
}

// TestGlobalReplayCheck runs scoring (8 tasks) and the replay check on a
// real broker. Vehicle bob, on another partition than alice, re-sends
// alice's drive three hours later the same day (every other sample, GPS
// noise): his day closes paid (his task never saw alice's trip), then the
// check's verdict re-scores it to a revision with replayed_trace and 0
// points; alice's day and the honest days are untouched and the check
// writes exactly one verdict. The check is then stopped and restarted
// (its postings rebuilt from its changelog): eve, on a third partition,
// re-sends alice's drive the next day and gets the same rescore (against
// alice's trip or bob's copy of it, whichever holds more of eve's shingles).
func TestGlobalReplayCheck(t *testing.T) {
	serde := schemas.SingleObject()
	// Vehicles on distinct partitions (the per-task index cannot see each other's trips).
	names := map[string]string{}
	used := map[int32]bool{}
	for _, base := range []string{"alice", "bob", "carol", "dave", "eve"} {
		for i := 0; ; i++ {
			v := base + "-" + string(rune('a'+i))
			if p := partitionOf(v); !used[p] {
				used[p], names[base] = true, v
				break
			}
		}
	}
	alice, bob, carol, dave, eve := names["alice"], names["bob"], names["carol"], names["dave"], names["eve"]
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
		r := rand.New(rand.NewPCG(uint64(shift), 9))
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
	closing := func(at time.Time) []telemetry.Event {
		var out []telemetry.Event
		for _, v := range []string{alice, bob, carol, dave, eve} {
			e := scoringtest.Event(v, at)
			e.TZ, e.DeviceID = "Asia/Shanghai", "dev-"+v
			out = append(out, *e)
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
	// scores waits until pred holds on the scores written so far (by score
	// id, in revision order).
	scores := func(brokers []string, what string, pred func(map[string][]avro.DailyScore) bool) map[string][]avro.DailyScore {
		t.Helper()
		deadline := time.Now().Add(120 * time.Second)
		for {
			recs, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicScores)
			got := map[string][]avro.DailyScore{}
			for _, r := range recs {
				if name, _ := serde.Name(r.Value); name != schemas.DailyScore {
					continue
				}
				var s avro.DailyScore
				if err := serde.Unmarshal(r.Value, &s); err != nil {
					t.Fatal(err)
				}
				got[s.ID] = append(got[s.ID], s)
			}
			if err == nil && pred(got) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: scores %+v (err %v)", what, got, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	rescored := func(s []avro.DailyScore, of ...string) bool {
		return len(s) == 2 && s[0].Revision == 0 && s[0].Points > 0 && !slices.Contains(s[0].Flags, scoring.FlagReplay) &&
			s[1].Revision == 1 && s[1].Points == 0 && slices.Contains(s[1].Flags, scoring.FlagReplay) &&
			strings.Contains(strings.Join(s[1].FlagReasons, ";"), "global check") && s[1].DistanceKm == s[0].DistanceKm &&
			slices.ContainsFunc(of, func(o string) bool { return strings.Contains(strings.Join(s[1].FlagReasons, ";"), "repeats "+o) })
	}

	brokers := kafkatest.Broker(t)
	alice1 := drive(alice, day1, 1)
	kafkatest.Produce(t, brokers, encode(alice1, copyOf(alice1, bob, 3*time.Hour), drive(carol, day1.Add(time.Hour), 2),
		drive(dave, day1.Add(2*time.Hour), 3), closing(day1.Add(19*time.Hour)))...)
	sc, err := scoringstage.NewStage(scoringstage.Config{Serde: serde, IdleTimeout: -1, TickEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stopScoring := kafkatest.Run(t, kafkatest.Config(brokers), sc)
	defer stopScoring()
	rc, err := replaycheck.NewStage(replaycheck.Config{Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	stopCheck := kafkatest.Run(t, kafkatest.Config(brokers), rc)
	d1 := "/2026-11-20"
	start := time.Now()
	got := scores(brokers, "bob rescored", func(m map[string][]avro.DailyScore) bool { return rescored(m[bob+d1], alice+d1) })
	t.Logf("bob's rescore %v after start (wall clock, informative); reason %q", time.Since(start).Round(time.Millisecond), got[bob+d1][1].FlagReasons)
	time.Sleep(time.Second) // anything more would be written by now
	got = scores(brokers, "day 1", func(map[string][]avro.DailyScore) bool { return true })
	for _, v := range []string{alice, carol, dave} {
		if s := got[v+d1]; len(s) != 1 || s[0].Points == 0 || len(s[0].Flags) != 0 {
			t.Errorf("%s: %+v, want one revision, paid, no flag", v, s)
		}
	}
	if !rescored(got[bob+d1], alice+d1) {
		t.Errorf("bob: %+v", got[bob+d1])
	}
	verdicts := kafkatest.WaitRecords(t, brokers, pipelines.TopicReplayVerdicts, 1, 10*time.Second)
	if len(verdicts) != 1 || string(verdicts[0].Key) != bob || verdicts[0].Partition != partitionOf(bob) {
		t.Fatalf("%d verdicts, want 1 keyed %s on partition %d: %+v", len(verdicts), bob, partitionOf(bob), verdicts)
	}
	stopCheck()

	// A restart of the check: alice's fingerprint now lives only in its
	// changelog; eve re-sends alice's drive on day 2.
	day2 := day1.AddDate(0, 0, 1)
	kafkatest.Produce(t, brokers, encode(copyOf(alice1, eve, 24*time.Hour+time.Hour), drive(carol, day2, 4), closing(day2.Add(19*time.Hour)))...)
	rc2, err := replaycheck.NewStage(replaycheck.Config{Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	stopCheck = kafkatest.Run(t, kafkatest.Config(brokers), rc2)
	defer stopCheck()
	d2 := "/2026-11-21"
	scores(brokers, "eve rescored after the restart", func(m map[string][]avro.DailyScore) bool { return rescored(m[eve+d2], alice+d1, bob+d1) })
	time.Sleep(time.Second)
	got = scores(brokers, "day 2", func(map[string][]avro.DailyScore) bool { return true })
	if s := got[carol+d2]; len(s) != 1 || s[0].Points == 0 {
		t.Errorf("carol day 2: %+v", s)
	}
	if s := got[alice+d1]; len(s) != 1 {
		t.Errorf("alice: %+v", s)
	}
	if v := kafkatest.WaitRecords(t, brokers, pipelines.TopicReplayVerdicts, 2, 10*time.Second); len(v) != 2 {
		t.Errorf("%d verdicts, want 2", len(v))
	}
	fps, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicFingerprints)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicReplayCheckChangelog)
	if err != nil {
		t.Fatal(err)
	}
	bytes := 0
	for _, r := range cl {
		bytes += len(r.Key) + len(r.Value)
	}
	trips := len(fps) / replay.Bands
	t.Logf("%d trips fingerprinted: %d band records; changelog %d records, %d bytes (%d per trip)", trips, len(fps), len(cl), bytes, bytes/max(1, trips))
	if len(fps)%replay.Bands != 0 || trips < 6 {
		t.Errorf("%d fingerprint records", len(fps))
	}
}
