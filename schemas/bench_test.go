package schemas

import (
	"testing"
	"time"
)

// The benchmarks encode and decode a telemetry.Event (the firehose record)
// with every field filled, and report, besides ns/op and allocs/op, the ratio
// to bare goavro (BinaryFromNative / NativeFromBinary on the same codec, no
// framing, no check) measured in the same run: x_goavro is the cost of
// framing plus, for Decode, the pre-decode check.
// Run: go test ./schemas -run '^$' -bench . -benchmem

func benchEvent(b *testing.B) (*Serde, *entry, map[string]any) {
	b.Helper()
	s := SingleObject()
	e, err := s.cat.lookup(TelemetryEvent)
	if err != nil {
		b.Skip(err)
	}
	native, _, err := newSample(e.text)
	if err != nil {
		b.Fatal(err)
	}
	native["fault_codes"] = []any{"P0301", "P0420"}
	return s, e, native
}

// perOp runs op n times and returns the mean time per call in ns: the
// baseline, timed in the same run as (and just before) the benchmark proper.
func perOp(n int, op func()) float64 {
	start := time.Now()
	for range n {
		op()
	}
	return float64(time.Since(start).Nanoseconds()) / float64(n)
}

func BenchmarkEncode(b *testing.B) {
	s, e, native := benchEvent(b)
	buf := make([]byte, 0, 512)
	base := perOp(b.N, func() {
		if _, err := e.codec.BinaryFromNative(buf[:0], native); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		var err error
		if buf, err = s.AppendEncode(buf[:0], TelemetryEvent, native); err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(int64(len(buf)))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x_goavro")
	b.ReportMetric(base, "goavro_ns/op")
}

func BenchmarkDecode(b *testing.B) {
	s, e, native := benchEvent(b)
	rec, err := s.Encode(TelemetryEvent, native)
	if err != nil {
		b.Fatal(err)
	}
	base := perOp(b.N, func() {
		if _, _, err := e.codec.NativeFromBinary(rec[10:]); err != nil {
			b.Fatal(err)
		}
	})
	b.SetBytes(int64(len(rec)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, _, err := s.Decode(rec); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/base, "x_goavro")
	b.ReportMetric(base, "goavro_ns/op")
}

// BenchmarkCheck is the pre-decode check alone.
func BenchmarkCheck(b *testing.B) {
	s, e, native := benchEvent(b)
	rec, err := s.Encode(TelemetryEvent, native)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.shape.check(rec[10:], 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeConfluentParallel decodes Confluent-framed events from all
// cores at once: the id lookup must not serialise them.
func BenchmarkDecodeConfluentParallel(b *testing.B) {
	_, _, native := benchEvent(b)
	s, err := NewSerde(b.Context(), SerdeConfig{Registry: &fakeRegistry{ids: map[string]int{}, texts: map[uint32]string{}}})
	if err != nil {
		b.Fatal(err)
	}
	rec, err := s.Encode(TelemetryEvent, native)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := s.Decode(rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
