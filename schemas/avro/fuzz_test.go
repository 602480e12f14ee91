package avro_test

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/minecart/minecart/schemas"
)

// FuzzUnmarshal: the typed decoders never panic, and accept exactly the
// bodies goavro (behind the Serde's pre-decode check) accepts, with the same
// values. Invariants: no panic; typed ok <=> goavro ok, except where the
// typed decoder is stricter than goavro on malformed input: an int longer
// than 5 bytes or outside int32 (goavro truncates it), and a block byte size
// beyond the body (goavro ignores it); when both read a body, the values
// agree field by field. Seeds: random valid records of every type.
func FuzzUnmarshal(f *testing.F) {
	serde := schemas.SingleObject()
	rnd := rand.New(rand.NewPCG(3, 4))
	for i, proto := range records() {
		fl := &filler{t: f, rnd: rnd, named: map[string]map[string]any{}}
		r := reflect.New(reflect.TypeOf(proto).Elem())
		fl.fill(r.Elem(), schemaJSON(f, proto.AvroName()), proto.AvroName())
		body, err := r.Interface().(schemas.Record).AppendAvro(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(uint8(i), body)
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		protos := records()
		proto := protos[int(which)%len(protos)]
		name := proto.AvroName()
		fp, err := schemas.Fingerprint(name)
		if err != nil {
			t.Fatal(err)
		}
		framed := append([]byte{0xC3, 0x01}, make([]byte, 8)...)
		for i := range 8 {
			framed[2+i] = byte(fp >> (8 * i))
		}
		framed = append(framed, body...)
		native, nerr := serde.DecodeAs(name, framed)
		typed := reflect.New(reflect.TypeOf(proto).Elem())
		terr := typed.Interface().(schemas.Record).UnmarshalAvro(body)
		if nerr == nil && terr != nil {
			for _, strict := range []string{"out of range", "longer than 5 bytes", "block size"} {
				if strings.Contains(terr.Error(), strict) {
					return
				}
			}
		}
		if (nerr == nil) != (terr == nil) {
			t.Fatalf("%s: goavro error %v, typed error %v", name, nerr, terr)
		}
		if terr == nil {
			checkNative(t, name, typed.Elem(), native, schemaJSON(t, name))
		}
	})
}
