package sink_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/sink"
)

// deadLetters collects what the Writer dead-letters (the Kafka side of dead
// letters is exercised by the end-to-end test).
type deadLetters struct {
	mu   sync.Mutex
	recs []kafka.Output
}

func (d *deadLetters) produce(_ context.Context, recs []kafka.Output) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs = append(d.recs, recs...)
	return nil
}

func TestWriterTables(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	dl := &deadLetters{}
	reg := prometheus.NewRegistry()
	w, err := sink.NewWriter(sink.WriterConfig{Conn: conn, DeadLetters: dl.produce, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ev0, ev1 := event(0), event(1)
	ev1.HDOP, ev1.SpeedLimitKmh, ev1.FuelPct, ev1.BatteryV, ev1.CoolantC = 0, 0, -1, 0, -273 // not reported
	at := base.Add(26 * time.Hour)
	recs := []pipelines.Record{
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 0, Value: encodeEvent(t, ev0)},
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 1, Value: encodeEvent(t, ev1)},
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 2, Key: []byte("v-x"), Value: []byte("not avro")},
		{Topic: pipelines.TopicTelemetryClean, Partition: 3, Offset: 0, Value: encodeEvent(t, event(2))},
		{Topic: pipelines.TopicScores, Offset: 0, Value: encode(t, schemas.DailyScore, scoreNative("v-000", "2026-11-20", 120, "teleport"))},
		{Topic: pipelines.TopicScores, Offset: 1, Value: encode(t, schemas.Watermark, map[string]any{"task": int32(0), "tasks": int32(8), "closed_through_ms": at})},
		{Topic: pipelines.TopicLedgerEntries, Offset: 0, Value: encode(t, schemas.LedgerEntry, entryNative(0, "credit", "v-000/2026-11-20", "v-000", "", 120, at))},
		{Topic: pipelines.TopicLedgerEntries, Offset: 1, Value: encode(t, schemas.LedgerEntry, entryNative(1, "debit", "r-1", "", "alice", -50, at))},
		{Topic: pipelines.TopicRedemptionStatus, Offset: 0, Value: encode(t, schemas.Redemption, redemptionNative("r-1", "CONFIRMED", 50, at, 1))},
		{Topic: "minecart.unknown", Offset: 0, Value: []byte{1}},
	}
	for round := 0; round < 2; round++ {
		if err := w.Write(ctx, recs); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if w.Skipped() != 7 {
		t.Errorf("skipped %d on the second round, want 7 stored records", w.Skipped())
	}
	// Each bad record is dead-lettered on each delivery, with its reason.
	if len(dl.recs) != 4 {
		t.Fatalf("%d dead letters", len(dl.recs))
	}
	codes := map[string]int{}
	for _, o := range dl.recs {
		_, m, err := serde.Decode(o.Value)
		if err != nil || o.Topic != pipelines.TopicDeadLetter {
			t.Fatalf("dead letter %v: %v", o.Topic, err)
		}
		codes[m["reason_code"].(string)]++
	}
	if codes[sink.CodeDecode] != 2 || codes[sink.CodeUnknownTopic] != 2 {
		t.Errorf("codes %v", codes)
	}
	for name, want := range map[string]float64{
		"minecart_sink_skipped_total":                          7,
		"minecart_sink_dead_letters_total{code=decode}":        2,
		"minecart_sink_dead_letters_total{code=unknown_topic}": 2,
		"minecart_sink_rows_total{table=telemetry}":            3,
		"minecart_sink_rows_total{table=ledger_entries}":       2,
	} {
		if got := gathered(t, reg)[name]; got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}

	for q, want := range map[string]uint64{
		"SELECT count() FROM telemetry": 3,
		"SELECT countIf(hdop IS NULL AND speed_limit_kmh IS NULL AND fuel_pct IS NULL AND battery_v IS NULL AND coolant_c IS NULL) FROM telemetry": 1,
		"SELECT countIf(has(fault_codes, 'P0301')) FROM telemetry":                                                                                 3,
		"SELECT sum(odometer_m) FROM telemetry":                                                                                                    30_000_000,
		"SELECT count() FROM daily_scores WHERE has(flags, 'teleport')":                                                                            1,
		"SELECT toUInt64(sum(delta) + 1000) FROM ledger_entries":                                                                                   1070,
		"SELECT count() FROM ledger_entries WHERE date IS NULL":                                                                                    1,
		"SELECT sum(debit_leaf_index) FROM redemptions WHERE status = 'CONFIRMED'":                                                                 1,
		"SELECT sum(events) FROM telemetry_hourly":                                                                                                 3,
		"SELECT toUInt64(sum(points)) FROM points_daily WHERE kind = 'credit'":                                                                     120,
		"SELECT toUInt64(max(max_offset)) FROM sink_offsets WHERE topic = 'minecart.telemetry.clean' AND partition = 0":                            1,
	} {
		var n uint64
		if err := conn.QueryRow(ctx, q).Scan(&n); err != nil || n != want {
			t.Errorf("%s = %d (%v), want %d", q, n, err, want)
		}
	}
	var tm time.Time
	var lat float64
	if err := conn.QueryRow(ctx, "SELECT time, lat FROM telemetry WHERE event_id = 'e-0'").Scan(&tm, &lat); err != nil ||
		!tm.Equal(time.UnixMilli(ev0.TimeMs)) || lat != ev0.Lat {
		t.Errorf("e-0: %v %v %v", tm, lat, err)
	}
}

// TestReplacingMergeTreeBackstop shows the second line of defence: if two
// writers stored the same event (a zombie sink after a rebalance), the
// telemetry table collapses the copies on merge.
func TestReplacingMergeTreeBackstop(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	for _, off := range []int64{5, 5} {
		w, err := sink.NewWriter(sink.WriterConfig{Conn: conn})
		if err != nil {
			t.Fatal(err)
		}
		// Different partitions defeat the offset check on purpose.
		rec := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: int32(off + int64(len(t.Name())%2)), Offset: off, Value: encodeEvent(t, event(7))}
		if err := w.Write(ctx, []pipelines.Record{rec}); err != nil {
			t.Fatal(err)
		}
		if err := conn.Exec(ctx, "DELETE FROM sink_offsets WHERE 1"); err != nil {
			t.Fatal(err)
		}
	}
	var before, after uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&before); err != nil || before != 2 {
		t.Fatalf("before merge %d %v", before, err)
	}
	if err := conn.Exec(ctx, "OPTIMIZE TABLE telemetry FINAL"); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&after); err != nil || after != 1 {
		t.Fatalf("after merge %d %v", after, err)
	}
}

// gathered flattens reg's counters to "name{label=value}" -> value.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, lp := range m.GetLabel() {
				key += fmt.Sprintf("{%s=%s}", lp.GetName(), lp.GetValue())
			}
			out[key] = m.GetCounter().GetValue()
		}
	}
	return out
}

// TestWriterChunksFailPartWay: a Write inserts in chunks of InsertRows,
// in order; when a later chunk fails (here its dead letters cannot be
// produced) the earlier chunks stay stored, and writing the batch again
// skips exactly them: every event is stored and rolled up once, the bad
// record is dead-lettered.
func TestWriterChunksFailPartWay(t *testing.T) {
	_, conn := migrated(t)
	ctx := context.Background()
	dl := &deadLetters{}
	calls := 0
	produce := func(ctx context.Context, recs []kafka.Output) error {
		if calls++; calls == 1 {
			return fmt.Errorf("broker down")
		}
		return dl.produce(ctx, recs)
	}
	w, err := sink.NewWriter(sink.WriterConfig{Conn: conn, DeadLetters: produce, InsertRows: 3})
	if err != nil {
		t.Fatal(err)
	}
	rec := func(p int32, off int64, i int) pipelines.Record {
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: p, Offset: off, Value: encodeEvent(t, event(i))}
	}
	bad := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 1, Offset: 1, Value: []byte("not avro")}
	recs := []pipelines.Record{
		rec(0, 0, 0), rec(1, 0, 1), rec(0, 1, 2), // chunk 1
		rec(0, 2, 3), bad, rec(0, 3, 4), // chunk 2: its dead letter fails the first time
		rec(1, 2, 5), rec(0, 4, 6), rec(0, 5, 7), // chunk 3
	}
	count := func() uint64 {
		var n uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := w.Write(ctx, recs); err == nil {
		t.Fatal("first Write succeeded although its dead letters failed")
	}
	if n := count(); n != 3 {
		t.Fatalf("%d rows stored after the failed Write, want the first chunk's 3", n)
	}
	if err := w.Write(ctx, recs); err != nil {
		t.Fatal(err)
	}
	if w.Skipped() != 3 {
		t.Errorf("skipped %d, want 3", w.Skipped())
	}
	var n, ids, hourly uint64
	if err := conn.QueryRow(ctx, "SELECT count(), uniqExact(event_id), (SELECT sum(events) FROM telemetry_hourly) FROM telemetry").
		Scan(&n, &ids, &hourly); err != nil || n != 8 || ids != 8 || hourly != 8 {
		t.Fatalf("count %d ids %d hourly %d (%v), want 8 each", n, ids, hourly, err)
	}
	if len(dl.recs) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl.recs))
	}
	_, m, err := serde.Decode(dl.recs[0].Value)
	if err != nil || m["source_partition"] != int32(1) || m["source_offset"] != int64(1) {
		t.Fatalf("dead letter %v %v", m, err)
	}
}
