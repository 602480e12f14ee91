package chserver_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	chproto "github.com/ClickHouse/ch-go/proto"
	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/column"
	"github.com/minecart/minecart/internal/benchfig"
	"github.com/minecart/minecart/internal/cputime"
)

// benchWireTypes are the columns of benchTable as the client sends them.
var benchWireTypes = []clickhouse.ColumnNameAndType{
	{Name: "vehicle_id", Type: "String"}, {Name: "time", Type: "DateTime64(3, 'UTC')"}, {Name: "device_id", Type: "String"},
	{Name: "seq", Type: "UInt64"}, {Name: "lat", Type: "Float64"}, {Name: "lon", Type: "Float64"},
	{Name: "speed_kmh", Type: "Float32"}, {Name: "speed_limit_kmh", Type: "Nullable(Float32)"},
	{Name: "fault_codes", Type: "Array(String)"},
}

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
// engine loading the same rows from inside itself (INSERT ... SELECT from a
// Log table holding them in the same order: the ceiling), in the same
// run: each round times both back to back, alternating which goes first,
// and the row is the median of the rounds' ratios, printed with every
// round's (run it with -benchtime 21x or more), and the CPU ratio (the
// rows per CPU second of both processes) as FIGURE ch_insert_cpu.
func BenchmarkBatchInsert(b *testing.B) {
	const n = 200_000
	conn := connect(b)
	ctx := context.Background()
	rows := makeBenchRows(n)
	for _, t := range []string{"bench_client", "bench_engine"} {
		post(b, "DROP TABLE IF EXISTS "+t)
		post(b, "CREATE TABLE "+t+" "+benchTable)
	}
	// clickhouse-go the fast way: whole typed columns (no per-row
	// reflection), LowCardinality columns sent as their plain type (the
	// server converts on insert, as ClickHouse does for Native input; this
	// avoids clickhouse-go's per-value dictionary map), arrays appended row
	// by row (its reflection-free path) with one shared empty value, and
	// the column types given up front (no DESCRIBE TABLE per batch).
	// The columns are sized before the appends (presize: as the sink
	// does), so that clickhouse-go's value-by-value appends never grow
	// them.
	strBytes := make([]int, len(benchWireTypes))
	for i, col := range [][]string{rows.vehicle, 2: rows.device} {
		for _, v := range col {
			strBytes[i] += len(v)
		}
	}
	wire := clickhouse.Context(ctx, clickhouse.WithColumnNamesAndTypes(benchWireTypes))
	noFaults := any([]string{})
	send := func(table string) {
		batch, err := conn.PrepareBatch(wire, "INSERT INTO "+table)
		if err != nil {
			b.Fatal(err)
		}
		presize(batch.Columns(), n, strBytes)
		for i, col := range []any{rows.vehicle, rows.time, rows.device, rows.seq, rows.lat, rows.lon, rows.speed, rows.limit} {
			if err := batch.Column(i).Append(col); err != nil {
				b.Fatal(err)
			}
		}
		faults := batch.Column(8)
		for _, f := range rows.faults {
			v := noFaults
			if len(f) > 0 {
				v = f
			}
			if err := faults.AppendRow(v); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	// The same rows as Native files for the engine's own load: in the
	// order the client sends them (the ceiling), and sorted by the table's
	// key (cheaper for the engine, which then skips most of its sort;
	// reported for comparison). A Log table keeps insertion order.
	post(b, "DROP TABLE IF EXISTS bench_order")
	post(b, "CREATE TABLE bench_order ENGINE = Log AS SELECT * FROM bench_client WHERE 0")
	send("bench_order")
	export := func(query, name string) (string, []byte) {
		res, err := http.Get(server(b).URL() + "/?query=" + url.QueryEscape(query))
		if err != nil {
			b.Fatal(err)
		}
		data, err := io.ReadAll(res.Body)
		res.Body.Close()
		if err != nil || res.StatusCode != 200 {
			b.Fatalf("native export: %d %v", res.StatusCode, err)
		}
		file := filepath.Join(b.TempDir(), name)
		if err := os.WriteFile(file, data, 0o644); err != nil {
			b.Fatal(err)
		}
		return file, data
	}
	_, data := export("SELECT * FROM bench_order FORMAT Native", "rows.native")
	// The same rows with the types clickhouse-go sends (plain String for
	// the LowCardinality columns): what the engine parses in path 1.
	_, plain := export("SELECT vehicle_id, time, CAST(device_id, 'String') AS device_id, seq, lat, lon, speed_kmh, speed_limit_kmh, "+
		"CAST(fault_codes, 'Array(String)') AS fault_codes FROM bench_order FORMAT Native", "plain.native")
	// The server refuses INSERT ... FROM INFILE (a host file) from clients:
	// the engine's own load reads the same rows, in the same order, from a
	// Log table inside the engine (INSERT ... SELECT: no HTTP, no parsing),
	// and the sorted variant from a Log table holding them in key order.
	post(b, "DROP TABLE IF EXISTS bench_order_sorted")
	post(b, "CREATE TABLE bench_order_sorted ENGINE = Log AS SELECT * FROM bench_order ORDER BY vehicle_id, time")

	insertURL := server(b).URL() + "/?query=INSERT+INTO+bench_http+FORMAT+Native"
	for _, t := range []string{"bench_http", "bench_sorted"} {
		post(b, "DROP TABLE IF EXISTS "+t)
		post(b, "CREATE TABLE "+t+" "+benchTable)
	}
	// The machine is shared (2 cores, often other builds): each round
	// measures the paths back to back and yields its own ratio, the order
	// alternating between rounds (even rounds the client first, odd rounds
	// the engine first), so a slow spell cannot favour one path; the row
	// is the median ratio of the rounds, printed with their spread.
	//
	// Each path's CPU time (this process's and the server's, which runs
	// the engine) is recorded too: the rows per CPU second of the client
	// path over the engine's is the work ratio, which the other load on
	// the cores moves far less than the wall-clock ratio.
	var client, posted, postedPlain, engine, sorted []float64 // rows/s per round
	var postedCPUs, plainCPUs []float64                       // s per round
	var ratios, cpuRatios []float64
	var lastCPU time.Duration // of the last timed call
	cpuNow := func() time.Duration {
		c, err := server(b).CPU()
		if err != nil {
			return 0 // not Linux: no CPU figures
		}
		return c + cputime.Self()
	}
	timed := func(f func()) float64 {
		c0 := cpuNow()
		t0 := time.Now()
		f()
		d := time.Since(t0)
		lastCPU = cpuNow() - c0
		return n / d.Seconds()
	}
	var clientCPU, engineCPU time.Duration
	var clientSelf []float64 // seconds per round: the client path's CPU in this process
	var clientCPUs, engineCPUs []float64
	clientPath := func() float64 {
		self := cputime.Self()
		r := timed(func() { send("bench_client") })
		clientCPU = lastCPU
		clientSelf = append(clientSelf, (cputime.Self() - self).Seconds())
		return r
	}
	enginePath := func() float64 {
		r := timed(func() { post(b, "INSERT INTO bench_engine SELECT * FROM bench_order") })
		engineCPU = lastCPU
		return r
	}
	round := 0
	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		for _, t := range []string{"bench_client", "bench_http", "bench_engine", "bench_sorted"} {
			post(b, "TRUNCATE TABLE "+t)
		}
		b.StartTimer()
		// 1. clickhouse-go: build the columns, encode, send over HTTP;
		// 3. the engine loading the same rows from inside (the ceiling).
		var c, e float64
		if round%2 == 0 {
			c, e = inOrder(clientPath, enginePath)
		} else {
			e, c = inOrder(enginePath, clientPath)
		}
		round++
		client, engine, ratios = append(client, c), append(engine, e), append(ratios, c/e)
		if clientCPU > 0 {
			cpuRatios = append(cpuRatios, engineCPU.Seconds()/clientCPU.Seconds())
			clientCPUs, engineCPUs = append(clientCPUs, clientCPU.Seconds()), append(engineCPUs, engineCPU.Seconds())
		}
		// 2. The server path alone: the same Native bytes POSTed with
		// net/http, as the engine's Native output writes them
		// (LowCardinality columns as such) and as clickhouse-go does
		// (plain String).
		postNative := func(body []byte) func() {
			return func() {
				res, err := http.Post(insertURL, "application/octet-stream", bytes.NewReader(body))
				if err != nil || res.StatusCode != 200 {
					b.Fatalf("post native: %v", err)
				}
				res.Body.Close()
			}
		}
		posted = append(posted, timed(postNative(data)))
		postedCPUs = append(postedCPUs, lastCPU.Seconds())
		postedPlain = append(postedPlain, timed(postNative(plain)))
		plainCPUs = append(plainCPUs, lastCPU.Seconds())
		// 4. The engine loading the rows already sorted (for comparison).
		sorted = append(sorted, timed(func() { post(b, "INSERT INTO bench_sorted SELECT * FROM bench_order_sorted") }))
	}
	b.StopTimer()
	clientRate, serverRate, engineRate, sortedRate := benchfig.Median(client), benchfig.Median(posted), benchfig.Median(engine), benchfig.Median(sorted)
	ratio := benchfig.Median(ratios)
	b.ReportMetric(clientRate, "client_rows/s")
	b.ReportMetric(serverRate, "http_rows/s")
	b.ReportMetric(engineRate, "engine_rows/s")
	b.ReportMetric(100*ratio, "client_%_of_engine")
	b.ReportMetric(100*benchfig.Median(div(posted, engine)), "http_%_of_engine")
	b.ReportMetric(sortedRate, "engine_sorted_rows/s")
	fmt.Printf("ch_insert: %d rounds, ratio median %.3f, min %.3f, max %.3f, rounds %s\n", len(ratios), ratio, slices.Min(ratios), slices.Max(ratios), benchfig.Rounds(ratios))
	if len(cpuRatios) > 0 {
		fmt.Printf("ch_insert: CPU (client process + server) engine/client median %.3f, min %.3f, max %.3f, rounds %s\n",
			benchfig.Median(cpuRatios), slices.Min(cpuRatios), slices.Max(cpuRatios), benchfig.Rounds(cpuRatios))
		fmt.Printf("FIGURE ch_insert_cpu %.3f min %.3f max %.3f\n", benchfig.Median(cpuRatios), slices.Min(cpuRatios), slices.Max(cpuRatios))
		fmt.Printf("ch_insert: CPU s per round (medians): client path %.3f (%.3f in this process), Native POST %.3f (plain String %.3f), engine path %.3f\n",
			benchfig.Median(clientCPUs), benchfig.Median(clientSelf), benchfig.Median(postedCPUs), benchfig.Median(plainCPUs), benchfig.Median(engineCPUs))
		// The server's CPU is read from /proc in clock ticks (10 ms):
		// the means resolve what the medians round.
		fmt.Printf("ch_insert: CPU s per round (means): client path %.4f (%.4f in this process), Native POST %.4f (plain String %.4f), engine path %.4f\n",
			mean(clientCPUs), mean(clientSelf), mean(postedCPUs), mean(plainCPUs), mean(engineCPUs))
	}
	fmt.Printf("RATIO ch_insert %.3f goal 0.70\n", ratio)
	b.Logf("median of %d rounds, %d rows (%d bytes Native): clickhouse-go over HTTP %.0f rows/s (%.0f%% of engine, rounds %s), "+
		"Native POST %.0f rows/s (%.0f%%; %d bytes with plain String columns: %.0f rows/s), engine INSERT SELECT %.0f rows/s (rows pre-sorted by the key: %.0f rows/s)",
		len(ratios), n, len(data), clientRate, 100*ratio, benchfig.Rounds(ratios), serverRate, 100*benchfig.Median(div(posted, engine)), len(plain), benchfig.Median(postedPlain), engineRate, sortedRate)
}

// presize makes room for rows more rows in a batch's columns, as
// services/sink's presize does (see there): decoding rows zero values
// allocates each column's arrays once at full size, Reset keeps the
// capacity; a String column's buffer is sized by strBytes[i]. Every
// column of benchWireTypes reads zero bytes as zero values.
func presize(cols []column.Interface, rows int, strBytes []int) {
	zero := chproto.NewReader(zeros{})
	for i, c := range cols {
		r := zero
		if c.Type() == "String" {
			// One string of all the bytes, then the end: the positions
			// are sized before the first row is read.
			r = chproto.NewReader(io.MultiReader(bytes.NewReader(binary.AppendUvarint(nil, uint64(strBytes[i]))), io.LimitReader(zeros{}, int64(strBytes[i]))))
		}
		_ = c.Decode(r, rows)
		c.Reset()
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// inOrder runs first then second and returns their results in
// that order.
func inOrder(first, second func() float64) (float64, float64) {
	a := first()
	return a, second()
}

// mean is the mean of xs (0 for none).
func mean(xs []float64) float64 {
	sum := 0.0
	for _, x := range xs {
		sum += x
	}
	return sum / float64(max(len(xs), 1))
}

// div is a[i]/b[i] for each i.
func div(a, b []float64) []float64 {
	out := make([]float64, len(a))
	for i := range a {
		out[i] = a[i] / b[i]
	}
	return out
}
