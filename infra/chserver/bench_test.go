package chserver_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const benchTable = `(
	vehicle_id String CODEC(ZSTD(1)), time DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
	device_id LowCardinality(String), seq UInt64 CODEC(Delta, ZSTD(1)),
	lat Float64 CODEC(Gorilla, ZSTD(1)), lon Float64 CODEC(Gorilla, ZSTD(1)),
	speed_kmh Float32 CODEC(Gorilla, ZSTD(1)), speed_limit_kmh Nullable(Float32),
	fault_codes Array(LowCardinality(String))
) ENGINE = MergeTree ORDER BY (vehicle_id, time)`

// benchRows are telemetry-shaped columns.
type benchRows struct {
	vehicle, device []string
	time            []time.Time
	seq             []uint64
	lat, lon        []float64
	speed           []float32
	limit           []*float32
	faults          [][]string
}

func makeBenchRows(n int) *benchRows {
	r := &benchRows{}
	base := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	fifty := float32(50)
	for i := range n {
		v, k := i%1000, i/1000
		r.vehicle = append(r.vehicle, fmt.Sprintf("VIN%014d", v))
		r.device = append(r.device, fmt.Sprintf("dev-%06d", v))
		r.time = append(r.time, base.Add(time.Duration(k)*time.Second))
		r.seq = append(r.seq, uint64(k))
		r.lat = append(r.lat, 31.2+float64(v)/1e3+float64(k)*1e-5)
		r.lon = append(r.lon, 121.4+float64(k)*1e-5)
		r.speed = append(r.speed, float32(k%110))
		if k%3 == 0 {
			r.limit = append(r.limit, &fifty)
		} else {
			r.limit = append(r.limit, nil)
		}
		if k%500 == 0 {
			r.faults = append(r.faults, []string{"P0301"})
		} else {
			r.faults = append(r.faults, []string{})
		}
	}
	return r
}

func post(b testing.TB, query string) {
	b.Helper()
	res, err := http.Post(server(b).URL()+"/", "text/plain", strings.NewReader(query))
	if err != nil {
		b.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 {
		b.Fatalf("%s: %d %s", query, res.StatusCode, body)
	}
}

// BenchmarkBatchInsert compares clickhouse-go/v2 batch inserts through the
// embedded HTTP server (client encode + HTTP + spool + engine) with the
// engine loading the same rows from a local Native file (the ceiling), in
// the same run, and reports the ratio.
func BenchmarkBatchInsert(b *testing.B) {
	const n = 200_000
	conn := connect(b)
	ctx := context.Background()
	rows := makeBenchRows(n)
	for _, t := range []string{"bench_client", "bench_engine"} {
		post(b, "DROP TABLE IF EXISTS "+t)
		post(b, "CREATE TABLE "+t+" "+benchTable)
	}
	send := func() {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO bench_client")
		if err != nil {
			b.Fatal(err)
		}
		for i, col := range []any{rows.vehicle, rows.time, rows.device, rows.seq, rows.lat, rows.lon, rows.speed, rows.limit, rows.faults} {
			if err := batch.Column(i).Append(col); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	// The same rows as a Native file, for the engine's own load.
	send()
	file := filepath.Join(b.TempDir(), "rows.native")
	res, err := http.Get(server(b).URL() + "/?query=" + strings.ReplaceAll("SELECT+*+FROM+bench_client+FORMAT+Native", " ", "+"))
	if err != nil {
		b.Fatal(err)
	}
	data, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil || res.StatusCode != 200 {
		b.Fatalf("native export: %d %v", res.StatusCode, err)
	}
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}

	insertURL := server(b).URL() + "/?query=INSERT+INTO+bench_http+FORMAT+Native"
	post(b, "DROP TABLE IF EXISTS bench_http")
	post(b, "CREATE TABLE bench_http "+benchTable)
	// The machine is shared: each path's fastest iteration is the least
	// disturbed measurement of it, so rates are reported from the minimum.
	best := func(d *time.Duration, v time.Duration) {
		if *d == 0 || v < *d {
			*d = v
		}
	}
	var client, server, engine time.Duration
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for _, t := range []string{"bench_client", "bench_http", "bench_engine"} {
			post(b, "TRUNCATE TABLE "+t)
		}
		b.StartTimer()
		// 1. clickhouse-go: build the columns, encode, send over HTTP.
		t0 := time.Now()
		send()
		best(&client, time.Since(t0))
		// 2. The server path alone: the same Native bytes POSTed with net/http.
		t0 = time.Now()
		res, err := http.Post(insertURL, "application/octet-stream", bytes.NewReader(data))
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("post native: %v", err)
		}
		res.Body.Close()
		best(&server, time.Since(t0))
		// 3. The engine loading the file (the ceiling).
		t0 = time.Now()
		post(b, "INSERT INTO bench_engine FROM INFILE '"+file+"' FORMAT Native")
		best(&engine, time.Since(t0))
	}
	b.StopTimer()
	clientRate := n / client.Seconds()
	serverRate := n / server.Seconds()
	engineRate := n / engine.Seconds()
	b.ReportMetric(clientRate, "client_rows/s")
	b.ReportMetric(serverRate, "http_rows/s")
	b.ReportMetric(engineRate, "engine_rows/s")
	b.ReportMetric(100*clientRate/engineRate, "client_%_of_engine")
	b.ReportMetric(100*serverRate/engineRate, "http_%_of_engine")
	b.Logf("best of %d, %d rows (%d bytes Native): clickhouse-go over HTTP %.0f rows/s (%.0f%% of engine), "+
		"Native POST %.0f rows/s (%.0f%%), engine from file %.0f rows/s",
		b.N, n, len(data), clientRate, 100*clientRate/engineRate, serverRate, 100*serverRate/engineRate, engineRate)
}
