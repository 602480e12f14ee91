package telemetry

import (
	"strconv"
	"testing"
	"time"

	"github.com/minecart/minecart/internal/cputime"
)

func benchEvents(n int) []Event {
	evs := make([]Event, n)
	for i := range evs {
		evs[i] = sample(uint64(i))
	}
	return evs
}

// BenchmarkDecodeJSON: one batch of 100 events per op.
func BenchmarkDecodeJSON(b *testing.B) {
	body, _ := EncodeJSON(benchEvents(100))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSON(body, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAvroBatch: one batch of 100 events per op.
func BenchmarkDecodeAvroBatch(b *testing.B) {
	body := AppendAvroBatch(nil, benchEvents(100))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeAvroBatch(body, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCodec compares the specialised Avro codec with goavro for one
// event (decode + encode), the ingest stage's per-event codec work.
func BenchmarkCodec(b *testing.B) {
	ev := sample(1)
	body := AppendAvro(nil, &ev)
	b.Run("specialised", func(b *testing.B) {
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			e, err := DecodeAvro(body, Limits{})
			if err != nil {
				b.Fatal(err)
			}
			buf = AppendAvro(buf[:0], &e)
		}
	})
	b.Run("goavro", func(b *testing.B) {
		c := codec(b, "telemetry_Event.avsc")
		b.ReportAllocs()
		var buf []byte
		for b.Loop() {
			n, _, err := c.NativeFromBinary(body)
			if err != nil {
				b.Fatal(err)
			}
			e, _ := FromNative(n.(map[string]any))
			if buf, err = c.BinaryFromNative(buf[:0], AppendNative(n.(map[string]any), &e)); err != nil {
				b.Fatal(err)
			}
		}
	})
}

func BenchmarkValidate(b *testing.B) {
	ev := sample(1)
	now := time.Now()
	for b.Loop() {
		if err := Validate(&ev, now, ValidateConfig{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeJSONReference is encoding/json on the same batch, for
// the ratio with BenchmarkDecodeJSON.
func BenchmarkDecodeJSONReference(b *testing.B) {
	body, _ := EncodeJSON(benchEvents(100))
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeJSONReference(body, Limits{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeAvroInterned: DecodeAvro against DecodeAvroInterned, per
// event, over 1,000 single events of 50 vehicles (one device each) in
// runs of 20 events of a vehicle, no fault codes: the stages' hot path.
//
//	go test -run '^$' -bench '^BenchmarkDecodeAvroInterned$' -benchmem ./services/telemetry/
func BenchmarkDecodeAvroInterned(b *testing.B) {
	const n, run, vehicles = 1000, 20, 50
	bodies := make([][]byte, n)
	for i := range bodies {
		e := sample(uint64(i))
		v := (i / run) % vehicles
		e.VehicleID = "VIN" + strconv.Itoa(10_000_000_000_000+v)
		e.DeviceID = "dev-" + strconv.Itoa(100_000+v)
		e.EventID = e.DeviceID + "-" + strconv.Itoa(i)
		e.FaultCodes = nil
		bodies[i] = AppendAvro(nil, &e)
	}
	b.Run("DecodeAvro", func(b *testing.B) {
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for i := 0; b.Loop(); i++ {
			if _, err := DecodeAvro(bodies[i%n], Limits{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("interned", func(b *testing.B) {
		in := NewInterner(0)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for i := 0; b.Loop(); i++ {
			if _, err := DecodeAvroInterned(bodies[i%n], Limits{}, in); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("interned-no-runs", func(b *testing.B) { // every event another vehicle than the last
		in := NewInterner(0)
		b.ReportAllocs()
		defer cpuPerOp(b)()
		for i := 0; b.Loop(); i++ {
			j := i % n
			if _, err := DecodeAvroInterned(bodies[(j%vehicles)*run+j/vehicles], Limits{}, in); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// cpuPerOp reports the process's CPU time per op when the returned func
// runs (deferred): on the shared machine ns/op swings with the load.
func cpuPerOp(b *testing.B) func() {
	cpu0 := cputime.Self()
	return func() { b.ReportMetric(float64(cputime.Self()-cpu0)/float64(b.N), "cpu-ns/op") }
}
