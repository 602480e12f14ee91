package telemetry

import (
	"testing"
	"time"
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
