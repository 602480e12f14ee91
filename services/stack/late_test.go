package stack

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/merkle"
	"github.com/minecart/minecart/services/scoring"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	scoringstage "github.com/minecart/minecart/services/scoring/stage"
	"github.com/minecart/minecart/services/settlement/settletest"
	"github.com/minecart/minecart/services/telemetry"
)

// TestEndToEndLateDaySameTotal: a box offline across midnight uploads
// its evening drive after the grace. On the real broker through scoring,
// ledger and settlement, the vehicle-day ends with the points of in-order
// arrival: a credit of what arrived in time, then one rescore entry
// (linked to the credit's leaf) with the difference, settled into the
// owner's balance and carried on the partners' credits topic. Restarting
// scoring and the ledger around the late upload appends the rescore once,
// and gives the same book (root) as a run without restarts.
func TestEndToEndLateDaySameTotal(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	day := time.Date(2026, 11, 20, 0, 0, 0, 0, time.FixedZone("CST", 8*3600)) // Asia/Shanghai: no DST
	end := day.Add(24 * time.Hour)
	tr := scoringtest.NewTrip("car-1", day.Add(8*time.Hour), 21).Drive(1200, 60).Stop(time.Minute)
	n := len(tr.Evs)
	tr.T = day.Add(23 * time.Hour).UnixMilli() // the evening drive, up to midnight; then the box is offline
	tr.Drive(1500, 50)
	r := scoring.DefaultRules()
	whole := scoring.NewDay(day.UnixMilli(), end.UnixMilli(), 5*3600*1000)
	var buf []byte
	for i := range tr.Evs {
		buf = whole.Add(&r, &tr.Evs[i], buf)
	}
	want := whole.Result(&r).Points
	first, second := tr.Evs[:n], tr.Evs[n:]

	type result struct {
		entries []ledger.Entry
		root    merkle.Hash
		credits []avro.CreditSettled
	}
	run := func(late, restarts bool) result {
		env := settletest.Start(t)
		serde := env.Serde
		env.Bind("car-1", "alice")
		newScoring := func() func() {
			st, err := scoringstage.NewStage(scoringstage.Config{Serde: serde, TickEvery: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			return kafkatest.Run(t, env.Cfg, st)
		}
		stopScoring := newScoring()
		produce := func(recs []kafka.Output) { kafkatest.Produce(t, env.Brokers, recs...) }
		events := func(evs []telemetry.Event) []kafka.Output {
			var out []kafka.Output
			for i := range evs {
				b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&evs[i]))
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte("car-1"), Value: b, ToPartition: true})
			}
			return out
		}
		marks := func(at time.Time) []kafka.Output { // the gateway's time mark on every partition
			var out []kafka.Output
			for p := range int32(pipelines.TelemetryPartitions) {
				b, err := serde.Marshal(&avro.TimeMark{Gateway: "gw-1", Partition: p, TimeMs: at.UTC()})
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(pipelines.MarkKeyPrefix + "gw-1"), Value: b,
					Headers: pipelines.MarkHeaders(), ToPartition: true, Partition: p})
			}
			return out
		}
		produce(marks(day.Add(8 * time.Hour)))
		produce(events(first))
		if !late {
			produce(events(second))
		}
		produce(marks(end.Add(2*time.Hour + time.Second))) // the day closes
		if late {
			produce(events(second))
			if restarts {
				stopScoring()
				stopScoring = newScoring()
			}
			produce(marks(end.Add(2*time.Hour + 2*time.Second))) // the revision
			if restarts {
				env.StopLedger()
				env.StartLedger()
				stopScoring()
				stopScoring = newScoring()
			}
		}
		produce(marks(end.Add(2*time.Hour + 30*time.Minute))) // the watermarks pass the revision's release mark
		env.WaitBalance("alice", want)
		defer stopScoring()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		var res result
		book := ledger.NewBook()
		recs, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicLedgerBlocks)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs {
			var rb avro.LedgerBlock
			if err := serde.Unmarshal(rec.Value, &rb); err != nil {
				t.Fatal(err)
			}
			blk, err := ledger.BlockFromAvro(&rb)
			if err != nil {
				t.Fatal(err)
			}
			if err := book.Apply(&blk, env.LedgerPub); err != nil {
				t.Fatal(err)
			}
			for _, raw := range blk.Entries {
				e, err := ledger.DecodeEntry(raw)
				if err != nil {
					t.Fatal(err)
				}
				res.entries = append(res.entries, e)
			}
		}
		res.root = book.Head().Root
		crs, err := kafkatest.ReadCommitted(ctx, env.Brokers, pipelines.TopicRewardCredits)
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range crs {
			var c avro.CreditSettled
			if err := serde.Unmarshal(rec.Value, &c); err != nil {
				t.Fatal(err)
			}
			res.credits = append(res.credits, c)
		}
		return res
	}
	desc := func(es []ledger.Entry) string {
		s := ""
		for _, e := range es {
			s += fmt.Sprintf("[%s %s %+d] ", e.Kind, e.ID, e.Delta())
		}
		return s
	}

	inOrder := run(false, false)
	if len(inOrder.entries) != 1 || inOrder.entries[0].Points != want {
		t.Fatalf("in order: %s, want one credit of %d", desc(inOrder.entries), want)
	}
	lateRun := run(true, true)
	if len(lateRun.entries) != 2 {
		t.Fatalf("late upload with restarts: %s, want a credit and one rescore", desc(lateRun.entries))
	}
	credit, rescore := lateRun.entries[0], lateRun.entries[1]
	if credit.Kind != ledger.KindCredit || rescore.Kind != ledger.KindRescore || rescore.Ref != credit.ID || rescore.RefLeaf != 0 ||
		rescore.Revision != 1 || rescore.Points != want || credit.Points+rescore.Amount != want || rescore.Amount <= 0 ||
		string(rescore.EventsHash) == string(credit.EventsHash) || rescore.ConfigVersion != r.Version {
		t.Fatalf("late upload: %s (rescore %+v)", desc(lateRun.entries), rescore)
	}
	if len(lateRun.credits) != 2 || lateRun.credits[1].Kind != "rescore" || lateRun.credits[1].Points != rescore.Amount ||
		lateRun.credits[1].ScoreID != credit.ID || lateRun.credits[1].DayPoints != want ||
		// nothing personal (docs/partners.md): the leaf's vehicle pseudonym, no account
		lateRun.credits[1].VehicleID != credit.VehicleID || lateRun.credits[0].VehicleID != credit.VehicleID ||
		lateRun.credits[0].Account != "" || lateRun.credits[1].Account != "" {
		t.Errorf("partner credits topic: %+v", lateRun.credits)
	}
	t.Logf("in order %d points; late: credit %d + rescore %+d = %d", want, credit.Points, rescore.Amount, credit.Points+rescore.Amount)
	again := run(true, false)
	if again.root != lateRun.root {
		t.Errorf("late upload without restarts: book %s (root %s), with restarts root %s", desc(again.entries), again.root, lateRun.root)
	}
}
