package sink_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/sink"
)

// fleetSums are what n events of the synthetic fleet must add up to.
func fleetSums(from, n int) (seq, odo uint64) {
	for i := from; i < from+n; i++ {
		ev := event(i)
		seq += ev.Seq
		odo += uint64(ev.OdometerKm*1000 + 0.5)
	}
	return seq, odo
}

func produceEvents(t *testing.T, brokers []string, from, n int) {
	t.Helper()
	kafkatest.ProduceN(t, brokers, pipelines.TopicTelemetryClean, n, func(i int) ([]byte, []byte) {
		ev := event(from + i)
		return []byte(ev.VehicleID), encodeEvent(t, ev)
	})
}

func TestSinkEndToEnd(t *testing.T) {
	brokers := kafkatest.Broker(t)
	srv, conn := migrated(t)
	const n = 20000
	produceEvents(t, brokers, 0, n)
	kafkatest.Produce(t, brokers, kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte("v-bad"), Value: []byte{0xC3, 0x01, 1, 2}})

	runSink(t, kafkatest.Config(brokers), srv.DSN(), sink.Config{MaxRows: 5000, MaxWait: 100 * time.Millisecond})
	waitCount(t, conn, "SELECT count() FROM telemetry", n, 60*time.Second)
	wantSeq, wantOdo := fleetSums(0, n)
	var cnt, ids, seq, odo, hourly uint64
	if err := conn.QueryRow(context.Background(), `SELECT count(), uniqExact(event_id), sum(seq), sum(odometer_m),
		(SELECT sum(events) FROM telemetry_hourly) FROM telemetry`).Scan(&cnt, &ids, &seq, &odo, &hourly); err != nil {
		t.Fatal(err)
	}
	if cnt != n || ids != n || seq != wantSeq || odo != wantOdo || hourly != n {
		t.Fatalf("landed count %d ids %d seq %d/%d odometer %d/%d hourly %d", cnt, ids, seq, wantSeq, odo, wantOdo, hourly)
	}
	dead := kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, 30*time.Second)
	var d avro.DeadLetter
	if err := serde.Unmarshal(dead[0].Value, &d); err != nil || d.ReasonCode != sink.CodeDecode || d.SourceTopic != pipelines.TopicTelemetryClean {
		t.Fatalf("dead letter %+v %v", d, err)
	}
}

// TestSinkCrashBetweenInsertAndCommit kills the sink after its first
// insert and before the offset commit, restarts it, and finds every event
// stored exactly once (and counted once by the rollup views).
func TestSinkCrashBetweenInsertAndCommit(t *testing.T) {
	brokers := kafkatest.Broker(t)
	_, conn := migrated(t)
	const n = 6000
	produceEvents(t, brokers, 0, n)
	cfg := kafkatest.Config(brokers)
	cfg.ShutdownTimeout = 200 * time.Millisecond

	stcfg := sink.Config{Inputs: []string{pipelines.TopicTelemetryClean}, MaxRows: 2000, MaxWait: 50 * time.Millisecond}
	st := newStage(t, conn, stcfg)
	// First life: the first batch is inserted, then the process "dies":
	// every later call fails and the runtime is cancelled, so no offset
	// is committed.
	ctx, cancel := context.WithCancel(context.Background())
	var inserted atomic.Int64
	var dead atomic.Bool
	crashErr := errors.New("killed between insert and commit")
	first := st
	first.Write = func(ctx context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
		if dead.Load() {
			return nil, crashErr
		}
		if _, err := st.Write(ctx, recs); err != nil {
			return nil, err
		}
		inserted.Store(int64(len(recs)))
		dead.Store(true)
		cancel()
		return nil, crashErr
	}
	if err := kafka.RunSink(ctx, cfg, first); err != nil {
		t.Fatal(err)
	}
	var stored uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM telemetry").Scan(&stored); err != nil || stored == 0 || int64(stored) != inserted.Load() {
		t.Fatalf("first life stored %d rows (%v), inserted %d", stored, err, inserted.Load())
	}

	// Second life: the uncommitted batch is delivered again.
	reg := prometheus.NewRegistry()
	stcfg.Registerer = reg
	stop := kafkatest.RunSink(t, cfg, newStage(t, conn, stcfg))
	waitCount(t, conn, "SELECT count() FROM telemetry", n, 60*time.Second)
	stop()
	if skipped := gathered(t, reg)["minecart_sink_skipped_total"]; skipped != float64(stored) {
		t.Errorf("second life skipped %v records, want the %d stored before the crash", skipped, stored)
	}
	var cnt, keys, hourly uint64
	if err := conn.QueryRow(context.Background(), `SELECT count(), uniqExact(src_partition, src_offset),
		(SELECT sum(events) FROM telemetry_hourly) FROM telemetry`).Scan(&cnt, &keys, &hourly); err != nil {
		t.Fatal(err)
	}
	if cnt != n || keys != n || hourly != n {
		t.Fatalf("after restart: %d rows, %d distinct offsets, hourly rollup %d; want %d each", cnt, keys, hourly, n)
	}
}

// TestSinkRejectAgainAfterCrash: a record rejected in a batch whose insert
// succeeded but whose process died before the runtime dead-lettered it (and
// committed) is rejected again when the batch is delivered again, although
// its offset is then below rows already stored, and dead-lettered once.
func TestSinkRejectAgainAfterCrash(t *testing.T) {
	brokers := kafkatest.Broker(t)
	_, conn := migrated(t)
	good := func(i int) kafka.Output { // vehicle v-000: one key, one partition
		ev := event(i * 50)
		return kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte(ev.VehicleID), Value: encodeEvent(t, ev)}
	}
	bad := kafka.Output{Topic: pipelines.TopicTelemetryClean, Key: []byte("v-000"), Value: []byte("not avro")}
	kafkatest.Produce(t, brokers, good(0), bad, good(1), good(2))
	cfg := kafkatest.Config(brokers)
	cfg.ShutdownTimeout = 200 * time.Millisecond
	stcfg := sink.Config{Inputs: []string{pipelines.TopicTelemetryClean}, MaxWait: 50 * time.Millisecond}
	st := newStage(t, conn, stcfg)

	// First life: the batch holding the bad record is inserted, then the
	// process dies before its dead letter and its commit.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	crashed := false
	first := st
	first.Write = func(ctx context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
		if crashed {
			return nil, errors.New("dead")
		}
		rejected, err := st.Write(ctx, recs)
		if err != nil || len(rejected) == 0 {
			return rejected, err
		}
		crashed = true
		cancel()
		return nil, errors.New("killed between insert and dead letters")
	}
	if err := kafka.RunSink(ctx, cfg, first); err != nil || !crashed {
		t.Fatalf("first life: crashed %v, %v", crashed, err)
	}
	waitCount(t, conn, "SELECT count() FROM telemetry", 3, 10*time.Second)
	if dl, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicDeadLetter); err != nil || len(dl) != 0 {
		t.Fatalf("first life: %d dead letters (%v)", len(dl), err)
	}

	// Second life: the stored events are skipped, the bad record is
	// dead-lettered.
	reg := prometheus.NewRegistry()
	stcfg.Registerer = reg
	stop := kafkatest.RunSink(t, cfg, newStage(t, conn, stcfg))
	kafkatest.WaitRecords(t, brokers, pipelines.TopicDeadLetter, 1, 30*time.Second)
	stop()
	dl, err := kafkatest.ReadCommitted(context.Background(), brokers, pipelines.TopicDeadLetter)
	if err != nil || len(dl) != 1 {
		t.Fatalf("second life: %d dead letters (%v)", len(dl), err)
	}
	var d avro.DeadLetter
	if err := serde.Unmarshal(dl[0].Value, &d); err != nil || d.ReasonCode != sink.CodeDecode || d.SourceOffset != 1 || d.Stage != "sink" {
		t.Fatalf("dead letter %+v %v", d, err)
	}
	// The three stored events are skipped (a restarted writer reads the
	// table: verifyStored); the bad record, which has no row, is decoded
	// and rejected again.
	if skipped := gathered(t, reg)["minecart_sink_skipped_total"]; skipped != 3 {
		t.Errorf("second life skipped %v records, want the 3 stored", skipped)
	}
	waitCount(t, conn, "SELECT count() FROM telemetry", 3, 10*time.Second)
}

// TestSinkClickHouseOutage stops ClickHouse under a running sink: it
// retries with backoff, and after ClickHouse returns every event is there
// once.
func TestSinkClickHouseOutage(t *testing.T) {
	brokers := kafkatest.Broker(t)
	srv, conn := migrated(t)
	dsn := srv.DSN()
	rcfg := kafkatest.Config(brokers)
	failed := make(chan struct{})
	var once sync.Once
	rcfg.Logger = slog.New(&watchHandler{Handler: rcfg.Logger.Handler(), msg: "sink write failed; retrying",
		seen: func() { once.Do(func() { close(failed) }) }})
	runSink(t, rcfg, dsn, sink.Config{MaxRows: 1000, MaxWait: 50 * time.Millisecond})
	produceEvents(t, brokers, 0, 3000)
	waitCount(t, conn, "SELECT count() FROM telemetry", 3000, 60*time.Second)

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	produceEvents(t, brokers, 3000, 3000)
	select { // the sink meets the outage and retries
	case <-failed:
	case <-time.After(60 * time.Second):
		t.Fatal("the sink never failed a write during the outage")
	}
	srv2, err := srv.Restart()
	if err != nil {
		t.Fatal(err)
	}
	defer srv2.Stop()
	conn2 := connect(t, srv2)
	waitCount(t, conn2, "SELECT count() FROM telemetry", 6000, 60*time.Second)
	var keys uint64
	seq, _ := fleetSums(0, 6000)
	var gotSeq uint64
	if err := conn2.QueryRow(context.Background(), "SELECT uniqExact(event_id), sum(seq) FROM telemetry").Scan(&keys, &gotSeq); err != nil || keys != 6000 || gotSeq != seq {
		t.Fatalf("after outage: %d ids, seq %d/%d (%v)", keys, gotSeq, seq, err)
	}
}

// watchHandler calls seen when a log record with message msg passes.
type watchHandler struct {
	slog.Handler
	msg  string
	seen func()
}

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.seen()
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *watchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithAttrs(as), msg: h.msg, seen: h.seen}
}

func (h *watchHandler) WithGroup(g string) slog.Handler {
	return &watchHandler{Handler: h.Handler.WithGroup(g), msg: h.msg, seen: h.seen}
}
