package avro_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/minecart/minecart/schemas"
)

// BenchmarkCodec encodes and decodes one framed record of every type with
// the typed codec and with goavro (the Serde's native path, the baseline),
// and reports the ratio of their speeds.
func BenchmarkCodec(b *testing.B) {
	serde := schemas.SingleObject()
	rnd := rand.New(rand.NewPCG(5, 6))
	for _, proto := range records() {
		name := proto.AvroName()
		f := &filler{t: b, rnd: rnd, named: map[string]map[string]any{}}
		v := reflect.New(reflect.TypeOf(proto).Elem())
		f.fill(v.Elem(), schemaJSON(b, name), name)
		rec := v.Interface().(schemas.Record)
		framed, err := serde.Marshal(rec)
		if err != nil {
			b.Fatal(err)
		}
		native, err := serde.DecodeAs(name, framed)
		if err != nil {
			b.Fatal(err)
		}
		var typedNs float64
		b.Run(name+"/typed", func(b *testing.B) {
			out := reflect.New(v.Elem().Type()).Interface().(schemas.Record)
			b.ReportAllocs()
			for b.Loop() {
				enc, err := serde.AppendMarshal(framed[:0:0], rec)
				if err != nil {
					b.Fatal(err)
				}
				if err := serde.Unmarshal(enc, out); err != nil {
					b.Fatal(err)
				}
			}
			typedNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
		})
		b.Run(name+"/goavro", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				enc, err := serde.Encode(name, native)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := serde.DecodeAs(name, enc); err != nil {
					b.Fatal(err)
				}
			}
			if typedNs > 0 {
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/typedNs, "x_slower_than_typed")
			}
		})
	}
}
