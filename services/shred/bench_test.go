package shred

import (
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
)

// benchScore is a typical framed DailyScore (~330 bytes).
func benchScore(b *testing.B, serde *schemas.Serde) []byte {
	region := "N31E121"
	late := int64(3)
	v, err := serde.Marshal(&avro.DailyScore{ID: "LSV77CY92PS000012/2026-11-01", VehicleID: "LSV77CY92PS000012", DeviceID: "dev-LSV77CY92PS000012",
		Date: "2026-11-01", TZ: "Asia/Shanghai", WindowStart: time.UnixMilli(1761926400000).UTC(), WindowEnd: time.UnixMilli(1762012800000).UTC(),
		ConfigVersion: "rules-v3", DistanceKm: 194.4, GpsKm: 194.4, OdometerKm: 194.1, DrivingS: 14400, Events: 14400, LateEvents: &late,
		Score: 100, Points: 1471, Flags: []string{}, FlagReasons: []string{}, EventsHash: make([]byte, 32), Region: region})
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// scoreTrips is one score's two round trips: clear (the baseline: encode
// + decode) and sealed (encode, seal, envelope; envelope, open, decode),
// with the vehicle's key already known; each returns the bytes on the
// topic.
func scoreTrips(b *testing.B) (clear, sealed func() int) {
	serde := schemas.SingleObject()
	ctx := context.Background()
	var ds avro.DailyScore
	if err := serde.Unmarshal(benchScore(b, serde), &ds); err != nil {
		b.Fatal(err)
	}
	sk, _ := pseudonym.GenerateSealKey()
	ks := newKeys()
	ks.committed = []pseudonym.Opening{opening(seq(0), pseudonym.Vehicle, ds.VehicleID)}
	ks.apply()
	w := NewWriter(&Keyring{Keys: ks, Seal: sk})
	rd := &Reader{Keys: ks, Serde: serde}
	decode := func(v []byte) {
		var back avro.DailyScore
		if err := serde.Unmarshal(v, &back); err != nil {
			b.Fatal(err)
		}
	}
	clear = func() int {
		v, err := serde.Marshal(&ds)
		if err != nil {
			b.Fatal(err)
		}
		decode(v)
		return len(v)
	}
	sealed = func() int {
		v, err := serde.Marshal(&ds)
		if err != nil {
			b.Fatal(err)
		}
		s, _, err := w.Seal(ctx, "minecart.scores", pseudonym.Vehicle, ds.VehicleID, v)
		if err != nil {
			b.Fatal(err)
		}
		env, err := serde.Marshal(s)
		if err != nil {
			b.Fatal(err)
		}
		_, in, _, err := rd.Unseal(ctx, "minecart.scores", []byte(s.Pseudonym), env)
		if err != nil {
			b.Fatal(err)
		}
		decode(in)
		return len(env)
	}
	return clear, sealed
}

// BenchmarkScoreRecord is the per-record cost of writing and reading one
// score, in clear and sealed (scoreTrips). Compare the two sub-benchmarks
// of one run: the ratio is the overhead.
func BenchmarkScoreRecord(b *testing.B) {
	clear, sealed := scoreTrips(b)
	for _, tc := range []struct {
		name string
		trip func() int
	}{{"clear", clear}, {"sealed", sealed}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			n := 0
			for b.Loop() {
				n = tc.trip()
			}
			b.ReportMetric(float64(n), "bytes/record")
		})
	}
}

// BenchmarkSealOverhead alternates the two paths of BenchmarkScoreRecord
// in blocks of 64 records within one loop, so machine load hits both
// alike, and reports each path's ns per record and their ratio.
func BenchmarkSealOverhead(b *testing.B) {
	clear, sealed := scoreTrips(b)
	const block = 64
	var tClear, tSealed time.Duration
	n := 0
	for b.Loop() {
		start := time.Now()
		for range block {
			clear()
		}
		mid := time.Now()
		for range block {
			sealed()
		}
		tClear += mid.Sub(start)
		tSealed += time.Since(mid)
		n += block
	}
	b.ReportMetric(float64(tClear.Nanoseconds())/float64(n), "ns-clear/record")
	b.ReportMetric(float64(tSealed.Nanoseconds())/float64(n), "ns-sealed/record")
	b.ReportMetric(float64(tSealed)/float64(tClear), "sealed/clear")
}
