package stack

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	replaycheck "github.com/minecart/minecart/services/replaycheck/stage"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	scoringstage "github.com/minecart/minecart/services/scoring/stage"
	"github.com/minecart/minecart/services/settlement/settletest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestEndToEndGlobalReplay: vehicle B, on another partition than vehicle
// A, re-sends A's drive three hours later the same day. On the real broker
// through scoring, the global replay check, the ledger and settlement
// (days closed by gateway time marks): B's day is credited at its close
// (B's task never saw A's trip), then the check's verdict re-scores it and
// the ledger appends one rescore entry taking the credit back (points 0),
// so B's owner ends with 0; A's owner keeps A's credit, and A's day has no
// rescore.
func TestEndToEndGlobalReplay(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	part := func(v string) int {
		return kgo.StickyKeyPartitioner(nil).ForTopic(pipelines.TopicTelemetryClean).Partition(&kgo.Record{Key: []byte(v)}, pipelines.TelemetryPartitions)
	}
	a, b := "car-a", ""
	for i := 0; b == ""; i++ {
		if v := fmt.Sprintf("car-b%d", i); part(v) != part(a) {
			b = v
		}
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.FixedZone("CST", 8*3600))
	end := day.Add(24 * time.Hour)
	rnd := rand.New(rand.NewPCG(5, 5))
	tr := scoringtest.NewTrip(a, day.Add(8*time.Hour), 5)
	for range 40 {
		tr.Drive(60, 20+80*rnd.Float64())
	}
	var cp []telemetry.Event
	for i, e := range tr.Evs {
		if i%2 == 1 {
			continue
		}
		e.VehicleID, e.DeviceID, e.EventID = b, "dev-"+b, e.EventID+"-copy"
		e.TimeMs += (3 * time.Hour).Milliseconds()
		e.Lat += (rnd.Float64()*2 - 1) * 5 / 111320
		cp = append(cp, e)
	}

	env := settletest.Start(t)
	serde := env.Serde
	env.Bind(a, "alice")
	env.Bind(b, "bob")
	sc, err := scoringstage.NewStage(scoringstage.Config{Serde: serde, TickEvery: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer kafkatest.Run(t, env.Cfg, sc)()
	rc, err := replaycheck.NewStage(replaycheck.Config{Logger: kafkatest.Logger()})
	if err != nil {
		t.Fatal(err)
	}
	defer kafkatest.Run(t, env.Cfg, rc)()
	produce := func(recs []kafka.Output) { kafkatest.Produce(t, env.Brokers, recs...) }
	events := func(evs []telemetry.Event) []kafka.Output {
		var out []kafka.Output
		for i := range evs {
			v, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&evs[i]))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(evs[i].VehicleID), Value: v})
		}
		return out
	}
	marks := func(at time.Time) []kafka.Output {
		var out []kafka.Output
		for p := range int32(pipelines.TelemetryPartitions) {
			v, err := serde.Marshal(&avro.TimeMark{Gateway: "gw-1", Partition: p, TimeMs: at.UTC()})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(pipelines.MarkKeyPrefix + "gw-1"), Value: v,
				Headers: pipelines.MarkHeaders(), ToPartition: true, Partition: p})
		}
		return out
	}
	produce(marks(day.Add(8 * time.Hour)))
	produce(events(tr.Evs))
	produce(events(cp))
	produce(marks(end.Add(2*time.Hour + time.Second))) // both days close
	// Marks every 200 ms (the gateway's, 1 s apart in log time) until B's
	// revision is written, then one past its release quarter hour.
	revised := func() bool {
		recs, _ := kafkatest.ReadCommitted(context.Background(), env.Brokers, pipelines.TopicScores)
		for _, r := range recs {
			var s avro.DailyScore
			if n, _ := serde.Name(r.Value); n == schemas.DailyScore && serde.Unmarshal(r.Value, &s) == nil && s.VehicleID == b && s.Revision == 1 {
				return true
			}
		}
		return false
	}
	at := end.Add(2*time.Hour + time.Second)
	for k := 0; !revised(); k++ {
		if k > 300 {
			t.Fatal("no revision of B's day after 300 marks")
		}
		at = at.Add(time.Second)
		produce(marks(at))
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("B's revision written by the mark at close + %v of log time", at.Sub(end.Add(2*time.Hour+time.Second)))
	produce(marks(end.Add(2*time.Hour + 40*time.Minute)))
	var entries []ledger.Entry
	env.Wait(30*time.Second, func() bool {
		entries = entries[:0]
		recs, err := kafkatest.ReadCommitted(context.Background(), env.Brokers, pipelines.TopicLedgerBlocks)
		if err != nil {
			return false
		}
		for _, rec := range recs {
			var rb avro.LedgerBlock
			if serde.Unmarshal(rec.Value, &rb) != nil {
				continue
			}
			blk, err := ledger.BlockFromAvro(&rb)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range blk.Entries {
				e, err := ledger.DecodeEntry(raw)
				if err != nil {
					t.Fatal(err)
				}
				entries = append(entries, e)
			}
		}
		return len(entries) >= 3
	}, func() string { return fmt.Sprintf("%d entries", len(entries)) })
	// Vehicle ids in the book are pseudonyms (the ledger's privacy choke
	// point): tell the days apart by the rescore's link and the balances.
	var credits, rescores []ledger.Entry
	for _, e := range entries {
		switch e.Kind {
		case ledger.KindCredit:
			credits = append(credits, e)
		case ledger.KindRescore:
			rescores = append(rescores, e)
		default:
			t.Fatalf("entry %+v", e)
		}
	}
	if len(credits) != 2 || len(rescores) != 1 {
		t.Fatalf("%d credits, %d rescores, want 2 and 1: %+v", len(credits), len(rescores), entries)
	}
	rs := rescores[0]
	ib := slices.IndexFunc(credits, func(e ledger.Entry) bool { return e.ID == rs.Ref })
	if ib < 0 || credits[ib].Points <= 0 || rs.Points != 0 || rs.Amount != -credits[ib].Points || rs.Revision != 1 ||
		!slices.Contains(rs.Flags, scoring.FlagReplay) {
		t.Fatalf("rescore %+v of credits %+v, want B's credit taken back to 0", rs, credits)
	}
	eaPoints, ebPoints := credits[1-ib].Points, credits[ib].Points
	if eaPoints <= 0 {
		t.Fatalf("alice's credit %d", eaPoints)
	}
	// Settlement applies the three entries after the ledger wrote them:
	// wait for each account's outcome (alice keeps her credit, bob's is
	// taken back).
	env.WaitBalance("alice", eaPoints)
	env.WaitBalance("bob", 0)
	t.Logf("A: credit %d; B: credit %d, rescore %+d (%s)", eaPoints, ebPoints, rs.Amount, rs.Reason)
}
