package stack

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/minecart/minecart/infra/chserver/chtest"
	"github.com/minecart/minecart/loadtest"
	"github.com/minecart/minecart/loadtest/fleet"
)

var benchVehicles = flag.Int("stack.vehicles", 200, "BenchmarkPipeline: simulated vehicles (one day each)")

// BenchmarkPipeline runs the whole embedded pipeline as `minecart run` does
// (embedded broker, every stage, the firehose sink into the embedded
// ClickHouse) on a simulated fleet of -stack.vehicles vehicles over one
// day, uploaded through the gateway over HTTP by 64 concurrent senders, and
// compares two rates of the same run on the same events:
//
//   - the gateway's own: events acknowledged / time the upload took;
//   - box to settled credit: events / time from the first upload to the
//     moment the pipeline stopped moving with every day released to the
//     ledger (the last change of the stages' activity before WaitSettled's
//     quiet period; the activity is polled every 500 ms).
//
// Their ratio is pipeline_e2e. Each iteration is a fresh stack.
//
//	go test -run '^$' -bench Pipeline -benchtime 1x ./services/stack/
func BenchmarkPipeline(b *testing.B) {
	for range b.N {
		ch := chtest.Start(b)
		sim, err := fleet.New(fleet.Config{Seed: 7, Vehicles: *benchVehicles, Days: 1, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
		if err != nil {
			b.Fatal(err)
		}
		ctx := context.Background()
		st, err := Start(ctx, Config{DataDir: b.TempDir(), KafkaAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
			ClickHouseDSN: ch.WriterDSN(), ClickHouseReadDSN: ch.AnalystDSN(), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			b.Fatal(err)
		}
		if err := st.ProvisionFleet(ctx, sim); err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		rep, err := st.SendFleet(ctx, sim, 0, loadtest.SenderConfig{Format: loadtest.FormatAvro, Concurrency: 64}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Events == 0 || rep.Rejected > 0 || rep.Failed > 0 {
			b.Fatalf("upload: %v", rep)
		}
		var last Activity
		var changed time.Time
		wctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		err = st.WaitSettled(wctx, sim.End(), 3*time.Second, func(a Activity) {
			if !a.same(last) {
				last, changed = a, time.Now()
			}
		})
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if changed.IsZero() {
			changed = time.Now()
		}
		sum, err := st.Summary(ctx, 0)
		if err != nil {
			b.Fatal(err)
		}
		if sum.Scores == 0 || sum.TreeSize == 0 {
			b.Fatalf("nothing settled: %d scores, tree size %d", sum.Scores, sum.TreeSize)
		}
		e2e := changed.Sub(t0)
		gwRate := rep.EventsPerSec
		e2eRate := float64(rep.Events) / e2e.Seconds()
		if err := st.Close(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(gwRate, "gateway_events/s")
		b.ReportMetric(e2eRate, "settled_events/s")
		b.ReportMetric(e2eRate/gwRate, "ratio")
		fmt.Printf("pipeline: %d vehicles, %d events: upload through the gateway %.1f s (%.0f events/s), box to settled credit %.1f s (%.0f events/s); %d daily scores, %d ledger entries\n",
			*benchVehicles, rep.Events, rep.Elapsed.Seconds(), gwRate, e2e.Seconds(), e2eRate, sum.Scores, sum.TreeSize)
		fmt.Printf("RATIO pipeline_e2e %.3f goal 0.60\n", e2eRate/gwRate)
	}
}
