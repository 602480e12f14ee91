package loadtest

import (
	"reflect"
	"testing"
	"time"

	"github.com/minecart/minecart/loadtest/fleet"
	"github.com/minecart/minecart/services/telemetry"
)

func simEvents(t testing.TB, n int) []telemetry.Event {
	t.Helper()
	sim, err := fleet.New(fleet.Config{Seed: 8, Vehicles: 20, Days: 1, Start: monday, Window: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var out []telemetry.Event
	for c := range sim.Chunks() {
		out = append(out, c.Events...)
		if len(out) >= n {
			break
		}
	}
	return out[:min(n, len(out))]
}

func TestAppendJSONBatch(t *testing.T) {
	evs := simEvents(t, 3000)
	evs = append(evs, telemetry.Event{EventID: "q\"uote\\back/slash é", DeviceID: "d", VehicleID: "v", Seq: 1,
		TimeMs: 1, TZ: "UTC", Lat: -0.000001, Lon: 1e-7, SpeedKmh: 123.456789012345, FuelPct: -1, CoolantC: -273,
		FaultCodes: []string{"P0301", "U0100"}})
	got, err := telemetry.DecodeJSON(appendJSONBatch(nil, evs), telemetry.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(evs) {
		t.Fatalf("%d events back, sent %d", len(got), len(evs))
	}
	for i := range evs {
		if !reflect.DeepEqual(normal(got[i]), normal(evs[i])) {
			t.Fatalf("event %d:\n got %+v\nwant %+v", i, got[i], evs[i])
		}
	}
}

// BenchmarkJSONEncode compares the Sender's encoder with
// telemetry.EncodeJSON (encoding/json, the baseline) on simulated batches
// of 100 events.
func BenchmarkJSONEncode(b *testing.B) {
	evs := simEvents(b, 10000)
	rate := func(f func([]telemetry.Event)) float64 {
		start := time.Now()
		for lo := 0; lo < len(evs); lo += 100 {
			f(evs[lo:min(lo+100, len(evs))])
		}
		return float64(len(evs)) / time.Since(start).Seconds()
	}
	var fast, base, dec float64
	var buf []byte
	for b.Loop() {
		fast += rate(func(e []telemetry.Event) { buf = appendJSONBatch(buf[:0], e) })
		base += rate(func(e []telemetry.Event) { _, _ = telemetry.EncodeJSON(e) })
		dec += rate(func(e []telemetry.Event) {
			if _, err := telemetry.DecodeJSON(appendJSONBatch(buf[:0], e), telemetry.Limits{}); err != nil {
				b.Fatal(err)
			}
		})
	}
	b.ReportMetric(fast/float64(b.N), "events/s")
	b.ReportMetric(base/float64(b.N), "encoding_json_events/s")
	b.ReportMetric(fast/base, "x_encoding_json")
	// what the gateway pays to read them (encode + DecodeJSON)
	b.ReportMetric(dec/float64(b.N), "encode+decode_events/s")
}
