package sink_test

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/services/sink"
)

// Batch sizes of BenchmarkSinkEndToEnd (default: the sink's defaults).
var (
	maxRows    = flag.Int("sink.maxrows", sink.DefaultMaxRows, "BenchmarkSinkEndToEnd: records per Write")
	insertRows = flag.Int("sink.insertrows", sink.DefaultInsertRows, "BenchmarkSinkEndToEnd: rows per INSERT")
)

// sinkColumns are the telemetry columns the sink writes (its INSERT list).
const sinkColumns = `vehicle_id, time, device_id, seq, event_id, tz, lat_e6, lon_e6, hdop, speed_kmh, heading_deg,
	accel_lon_ms2, accel_lat_ms2, speed_limit_kmh, odometer_m, engine_on, fuel_pct, battery_v, coolant_c, fault_codes,
	src_topic, src_partition, src_offset`

// chPost runs one statement over the embedded server's HTTP interface.
func chPost(b testing.TB, base, query string) {
	b.Helper()
	res, err := http.Post(base+"/", "text/plain", strings.NewReader(query))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b.Fatalf("%.80s: %d %s", query, res.StatusCode, body)
	}
}

// BenchmarkSinkEndToEnd measures the rows per second the sink sustains from
// Kafka to ClickHouse: simulated fleet telemetry (loadtest/fleet) produced
// to the clean topic of an embedded broker (kfake), the sink's stage
// (kafka.RunSink with sink.NewStage, as the sink's main runs it: franz-go
// fetch, Avro decode, offset check, clickhouse-go inserts over HTTP)
// consuming it into the embedded server, from the start of its first Write
// to the end of the Write that stored the last row. The baseline, in the
// same run: the engine loading the same rows, in Kafka's order, from a
// local Native file into the same table (with the same materialized views)
// in one INSERT. Each iteration starts on empty tables with a new consumer
// group. Rates are from each path's fastest iteration (the machine is
// shared).
func BenchmarkSinkEndToEnd(b *testing.B) {
	const n = 200_000
	brokers := kafkatest.Broker(b)
	srv, conn := migrated(b)
	ctx := context.Background()
	evs := fleetEvents(b, 60, n)
	if len(evs) < n {
		b.Fatalf("fleet gave %d events, want %d", len(evs), n)
	}
	kafkatest.ProduceN(b, brokers, pipelines.TopicTelemetryClean, n, func(i int) ([]byte, []byte) {
		return []byte(evs[i].VehicleID), encodeEvent(b, evs[i])
	})
	runtime := kafkatest.Config(brokers)
	tables := []string{"telemetry", "telemetry_hourly", "fleet_daily", "sink_offsets"}
	truncate := func() {
		for _, t := range tables {
			chPost(b, srv.URL(), "TRUNCATE TABLE "+t)
		}
	}
	count := func() uint64 {
		var c uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM telemetry").Scan(&c); err != nil {
			b.Fatal(err)
		}
		return c
	}
	file := filepath.Join(b.TempDir(), "telemetry.native")
	var sinkTime, engine time.Duration
	best := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	iter, writes := 0, 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		truncate()
		iter++
		st := newStage(b, conn, sink.Config{Name: fmt.Sprintf("bench-%d", iter), Inputs: []string{pipelines.TopicTelemetryClean},
			MaxRows: *maxRows, InsertRows: *insertRows})
		var first, last time.Time
		written := 0
		all := make(chan struct{})
		write := st.Write
		st.Write = func(ctx context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
			if first.IsZero() {
				first = time.Now()
			}
			rejected, err := write(ctx, recs)
			if err != nil {
				return nil, err
			}
			writes++
			if written += len(recs); written == n {
				last = time.Now()
				close(all)
			}
			return rejected, nil
		}
		b.StartTimer()
		stop := kafkatest.RunSink(b, runtime, st)
		select {
		case <-all:
		case <-time.After(5 * time.Minute):
			b.Fatalf("%d of %d rows written", written, n)
		}
		b.StopTimer()
		stop()
		if c := count(); c != n {
			b.Fatalf("%d rows landed, want %d", c, n)
		}
		best(&sinkTime, last.Sub(first))
		if iter == 1 {
			// The landed rows, in Kafka's order, as the engine's input.
			res, err := http.Get(srv.URL() + "/?query=" + url.QueryEscape("SELECT "+sinkColumns+
				" FROM telemetry ORDER BY src_partition, src_offset FORMAT Native"))
			if err != nil {
				b.Fatal(err)
			}
			data, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || res.StatusCode != http.StatusOK {
				b.Fatalf("export: %d %v", res.StatusCode, err)
			}
			if err := os.WriteFile(file, data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
		truncate()
		t0 := time.Now()
		// The server refuses FROM INFILE from clients (a host file): the
		// data goes in the body, which the server spools and loads the same way.
		data, err := os.Open(file)
		if err != nil {
			b.Fatal(err)
		}
		res, err := http.Post(srv.URL()+"/?query="+url.QueryEscape("INSERT INTO telemetry ("+sinkColumns+") FORMAT Native"), "application/octet-stream", data)
		data.Close()
		if err != nil {
			b.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK {
			b.Fatalf("engine load: %d", res.StatusCode)
		}
		best(&engine, time.Since(t0))
		if c := count(); c != n {
			b.Fatalf("engine loaded %d rows, want %d", c, n)
		}
		b.StartTimer()
	}
	b.StopTimer()
	sinkRate := n / sinkTime.Seconds()
	engineRate := n / engine.Seconds()
	b.ReportMetric(sinkRate, "sink_rows/s")
	b.ReportMetric(engineRate, "engine_rows/s")
	b.ReportMetric(100*sinkRate/engineRate, "sink_%_of_engine")
	fmt.Printf("RATIO sink_e2e %.3f goal 0.60\n", sinkRate/engineRate)
	b.Logf("best of %d, %d events in %.1f writes each (%d rows per insert): sink %.0f rows/s (%.0f%% of engine), engine from file %.0f rows/s",
		b.N, n, float64(writes)/float64(iter), *insertRows, sinkRate, 100*sinkRate/engineRate, engineRate)
}
