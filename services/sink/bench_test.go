package sink_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/services/sink"
	"github.com/minecart/minecart/services/telemetry"
)

// fleetEvents simulates a small fleet for a day (loadtest/fleet: realistic
// trips, 1 Hz while driving) and returns up to max events.
func fleetEvents(b testing.TB, vehicles, max int) []telemetry.Event {
	b.Helper()
	sim, err := fleet.New(fleet.Config{Seed: 7, Vehicles: vehicles, Days: 1, Start: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		b.Fatal(err)
	}
	var evs []telemetry.Event
	for i := range vehicles {
		ev, _ := sim.Vehicle(i)
		evs = append(evs, ev...)
		if len(evs) >= max {
			return evs[:max]
		}
	}
	return evs
}

// BenchmarkWriterTelemetry measures the sink's Write (Avro decode,
// offset check, clickhouse-go insert through the embedded server) on
// simulated fleet telemetry, and reports the stored size per event after
// merging, from system.parts and system.columns.
func BenchmarkWriterTelemetry(b *testing.B) {
	_, conn := migrated(b)
	ctx := context.Background()
	evs := fleetEvents(b, 40, 400_000)
	const batch = 50_000
	recs := make([]pipelines.Record, len(evs))
	for i := range evs {
		recs[i] = pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: int32(i % 8), Value: encodeEvent(b, evs[i])}
	}
	st := newStage(b, conn, sink.Config{})
	next := int64(0)
	start := time.Now()
	b.ResetTimer()
	for b.Loop() {
		for i := range recs {
			recs[i].Offset = next + int64(i)
		}
		next += int64(len(recs))
		for lo := 0; lo < len(recs); lo += batch {
			if _, err := st.Write(ctx, recs[lo:min(lo+batch, len(recs))]); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(recs)*b.N)/time.Since(start).Seconds(), "events/s")

	// Re-deliveries of the same events collapse on merge; measure one copy.
	if err := conn.Exec(ctx, "OPTIMIZE TABLE telemetry FINAL"); err != nil {
		b.Fatal(err)
	}
	var rows, compressed, uncompressed uint64
	if err := conn.QueryRow(ctx, `SELECT sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes)
		FROM system.parts WHERE database = currentDatabase() AND table = 'telemetry' AND active`).Scan(&rows, &compressed, &uncompressed); err != nil {
		b.Fatal(err)
	}
	if rows != uint64(len(evs)) {
		b.Fatalf("%d rows stored, want %d", rows, len(evs))
	}
	perEvent := float64(compressed) / float64(rows)
	b.ReportMetric(perEvent, "bytes/event")
	b.ReportMetric(float64(uncompressed)/float64(compressed), "compression_x")
	var cols []struct {
		Name       string `ch:"name"`
		Compressed uint64 `ch:"data_compressed_bytes"`
	}
	if err := conn.Select(ctx, &cols, `SELECT name, data_compressed_bytes FROM system.columns
		WHERE database = currentDatabase() AND table = 'telemetry' AND data_compressed_bytes > 0`); err != nil {
		b.Fatal(err)
	}
	sort.Slice(cols, func(i, j int) bool { return cols[i].Compressed > cols[j].Compressed })
	var sb strings.Builder
	for _, c := range cols {
		fmt.Fprintf(&sb, " %s=%.2f", c.Name, float64(c.Compressed)/float64(rows))
	}
	b.Logf("%d events: %.1f bytes/event compressed (%.1fx); per column bytes/event:%s", rows, perEvent,
		float64(uncompressed)/float64(compressed), sb.String())
}
