package chserver_test

import (
	"context"
	"math"
	"reflect"
	"testing"
	"time"
)

// TestTypesRoundTrip appends one value of every column type minecart's
// schema uses through PrepareBatch and reads it back with Scan.
func TestTypesRoundTrip(t *testing.T) {
	conn := connect(t)
	ctx := context.Background()
	exec(t, conn, `CREATE TABLE types (
		ts   DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
		day  Date,
		at   DateTime('UTC'),
		lc   LowCardinality(String),
		s    String,
		ns   Nullable(Float64),
		nlc  LowCardinality(Nullable(String)),
		arr  Array(LowCardinality(String)),
		f32  Float32 CODEC(Gorilla),
		f64  Float64 CODEC(Gorilla, LZ4),
		u8   UInt8,
		u16  UInt16,
		u32  UInt32,
		u64  UInt64 CODEC(Delta, ZSTD(1)),
		i32  Int32,
		i64  Int64,
		b    Bool,
		m    Map(LowCardinality(String), UInt64),
		e    Enum8('credit' = 1, 'debit' = 2),
		nd   Nullable(Date),
		nstr Nullable(String),
		nu   Nullable(UInt64)
	) ENGINE = MergeTree ORDER BY (lc, ts)`)

	type row struct {
		TS  time.Time
		Day time.Time
		At  time.Time
		LC  string
		S   string
		NS  *float64
		NLC *string
		Arr []string
		F32 float32
		F64 float64
		U8  uint8
		U16 uint16
		U32 uint32
		U64 uint64
		I32 int32
		I64 int64
		B   bool
		M   map[string]uint64
		E   string
		ND  *time.Time
		NSt *string
		NU  *uint64
	}
	half, name := 0.5, "x"
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC)
	big := uint64(math.MaxUint64)
	base := time.Date(2026, 11, 25, 13, 14, 15, 123_000_000, time.UTC)
	want := []row{
		{base, time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC), base.Truncate(time.Second), "Asia/Shanghai", "ünïcode \t\n'\"",
			&half, &name, []string{"P0301", "P0420"}, 1.25, math.Pi, 255, 65535, math.MaxUint32, math.MaxUint64,
			math.MinInt32, math.MinInt64, true, map[string]uint64{"a": 1}, "debit", &day, &name, &big},
		{base.Add(time.Millisecond), time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC), time.Unix(0, 0).UTC(), "", "",
			nil, nil, []string{}, -0, -1e300, 0, 0, 0, 0, 0, 0, false, map[string]uint64{}, "credit", nil, nil, nil},
	}
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO types")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range want {
		if err := batch.Append(r.TS, r.Day, r.At, r.LC, r.S, r.NS, r.NLC, r.Arr, r.F32, r.F64,
			r.U8, r.U16, r.U32, r.U64, r.I32, r.I64, r.B, r.M, r.E, r.ND, r.NSt, r.NU); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, "SELECT * FROM types ORDER BY ts")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.TS, &r.Day, &r.At, &r.LC, &r.S, &r.NS, &r.NLC, &r.Arr, &r.F32, &r.F64,
			&r.U8, &r.U16, &r.U32, &r.U64, &r.I32, &r.I64, &r.B, &r.M, &r.E, &r.ND, &r.NSt, &r.NU); err != nil {
			t.Fatal(err)
		}
		r.TS, r.Day, r.At = r.TS.UTC(), r.Day.UTC(), r.At.UTC()
		if r.ND != nil {
			d := r.ND.UTC()
			r.ND = &d
		}
		got = append(got, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// Column types as the client sees them.
	var typ string
	if err := conn.QueryRow(ctx, "SELECT toTypeName(arr) FROM types LIMIT 1").Scan(&typ); err != nil || typ != "Array(LowCardinality(String))" {
		t.Fatalf("type %q %v", typ, err)
	}
}

// TestMillionRowBatch sends one batch of 1,000,000 rows and checks what
// landed with aggregates computed both ways.
func TestMillionRowBatch(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	conn := connect(t)
	ctx := context.Background()
	exec(t, conn, `CREATE TABLE million (vehicle LowCardinality(String), ts DateTime64(3, 'UTC') CODEC(DoubleDelta),
		speed Float32 CODEC(Gorilla), odo Float64 CODEC(Gorilla), seq UInt64 CODEC(Delta, ZSTD(1))) ENGINE = MergeTree ORDER BY (vehicle, ts)`)
	const n = 1_000_000
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO million")
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	vehicles := []string{"v0", "v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8", "v9"}
	var seqSum uint64
	var speedSum float64
	for i := range n {
		sp := float32(i % 130)
		seqSum += uint64(i)
		speedSum += float64(sp)
		if err := batch.Append(vehicles[i%10], base.Add(time.Duration(i)*time.Second), sp, float64(i)/10, uint64(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	var cnt, seqs uint64
	var speeds float64
	var nVehicles uint64
	if err := conn.QueryRow(ctx, "SELECT count(), sum(seq), sum(speed), uniqExact(vehicle) FROM million").Scan(&cnt, &seqs, &speeds, &nVehicles); err != nil {
		t.Fatal(err)
	}
	if cnt != n || seqs != seqSum || speeds != speedSum || nVehicles != 10 {
		t.Fatalf("count %d seq %d/%d speed %v/%v vehicles %d", cnt, seqs, seqSum, speeds, speedSum, nVehicles)
	}
	// A grouped aggregate read back into a slice of structs.
	var perVehicle []struct {
		Vehicle string  `ch:"vehicle"`
		Rows    uint64  `ch:"rows"`
		MaxOdo  float64 `ch:"max_odo"`
	}
	if err := conn.Select(ctx, &perVehicle, "SELECT vehicle, count() AS rows, max(odo) AS max_odo FROM million GROUP BY vehicle ORDER BY vehicle"); err != nil {
		t.Fatal(err)
	}
	if len(perVehicle) != 10 || perVehicle[9].Rows != n/10 || perVehicle[9].MaxOdo != float64(n-1)/10 {
		t.Fatalf("per vehicle %+v", perVehicle)
	}
}
