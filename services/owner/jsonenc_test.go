package owner

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// encoderJSON is what encoding/json's Encoder writes for v (with its
// newline).
func encoderJSON(t testing.TB, v any) ([]byte, bool) {
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(v); err != nil {
		return nil, false
	}
	return buf.Bytes(), true
}

func checkSame(t testing.TB, v jsonAppender) {
	t.Helper()
	want, wok := encoderJSON(t, v)
	got, ok := v.appendJSON(nil)
	if ok != wok {
		t.Fatalf("appendJSON ok %v, encoding/json ok %v for %+v", ok, wok, v)
	}
	if ok && !bytes.Equal(append(got, '\n'), want) {
		t.Fatalf("appendJSON:\n%s\nencoding/json:\n%s", got, want)
	}
}

var oddFloats = []float64{0, math.Copysign(0, -1), 1, -1, 0.1, 1e-6, 9.99e-7, 1e-7, 1e20, 1e21, 1.5e21, -2.5e-9, 123456789.123, 48.137154,
	math.MaxFloat64, math.SmallestNonzeroFloat64, float64(math.MaxFloat32), 33.333336, 1e-320}
var oddStrings = []string{"", "veh-000001", "a<b>&c", "quote\"back\\slash", "tab\tnl\n", "ünïcødé", "\xff\xfe", "line\u2028sep", "ctl\x01"}

func TestAppendJSON(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	times := []time.Time{time.UnixMilli(1763600000123).UTC(), time.Date(2026, 11, 20, 8, 0, 0, 5, berlin), {}, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(2026, 1, 1, 0, 0, 0, 0, time.FixedZone("odd", 5*3600+1800))}
	late := uint64(7)
	for i, f := range append(oddFloats, math.NaN(), math.Inf(1)) {
		s := oddStrings[i%len(oddStrings)]
		tm := times[i%len(times)]
		checkSame(t, Track{VehicleID: s, From: tm, To: tm, InRange: uint64(i), Downsampled: i%2 == 0, BucketMs: int64(i % 3),
			Points: []TrackPoint{{Time: tm, Lat: f, Lon: -f, SpeedKmh: float32(f), HeadingDeg: float32(-f)}}, NextCursor: s})
		r := Report{Date: s, ScoreID: s, TZ: s, WindowStart: tm, WindowEnd: tm, ConfigVersion: s, Score: float32(f), Points: int64(-i),
			DistanceKm: f, GPSKm: -f, OdometerKm: f / 3, DrivingS: math.MaxUint32, Events: math.MaxUint64, HDOPRejected: uint64(i),
			Flags: []string{s, "x"}, FlagReasons: nil}
		if i%2 == 0 {
			r.LateEvents = &late
			r.Flags, r.FlagReasons = nil, []string{}
			r.Revision, r.LateAdded, r.RevisionReason = uint32(i)+1, uint64(i)*3, s
		}
		checkSame(t, Reports{VehicleID: s, From: s, To: s, Reports: []Report{r, r}, NextCursor: s})
	}
	checkSame(t, Track{Points: nil})
	checkSame(t, Track{Points: []TrackPoint{}})
	checkSame(t, Reports{})
	checkSame(t, Reports{Reports: []Report{}})
}

func FuzzAppendJSON(f *testing.F) {
	f.Add(uint64(1), int64(1763600000123), "veh-1", uint32(0x42300000), 48.1)
	f.Fuzz(func(t *testing.T, seed uint64, ms int64, s string, f32bits uint32, f64 float64) {
		rng := rand.New(rand.NewPCG(seed, 1))
		tm := time.UnixMilli(ms).UTC()
		var pts []TrackPoint
		for range rng.IntN(5) {
			pts = append(pts, TrackPoint{Time: tm.Add(time.Duration(rng.Int64N(1e12))), Lat: f64 * rng.Float64(), Lon: math.Float64frombits(rng.Uint64()),
				SpeedKmh: math.Float32frombits(f32bits), HeadingDeg: math.Float32frombits(rng.Uint32())})
		}
		checkSame(t, Track{VehicleID: s, From: tm, To: tm, InRange: rng.Uint64(), BucketMs: rng.Int64(), Points: pts, NextCursor: s})
		checkSame(t, Reports{VehicleID: s, Reports: []Report{{Date: s, Score: math.Float32frombits(f32bits), DistanceKm: f64, WindowStart: tm,
			WindowEnd: tm, Flags: []string{s}, FlagReasons: []string{}}}})
	})
}
