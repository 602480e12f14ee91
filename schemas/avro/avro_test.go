package avro_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/schemas/internal/avrogen"
)

// records is one value of every generated type.
func records() []schemas.Record {
	return []schemas.Record{
		&avro.DeadLetter{}, &avro.Device{}, &avro.LedgerBlock{}, &avro.DebitRequest{}, &avro.LedgerEntry{},
		&avro.DailyScore{}, &avro.LateEvent{}, &avro.Watermark{}, &avro.AccountBinding{}, &avro.CatalogItem{},
		&avro.CreditSettled{}, &avro.PartnerAck{}, &avro.Redemption{}, &avro.RedemptionRequest{}, &avro.Statement{},
		&avro.Credential{}, &avro.TimeMark{}, &avro.TransferRequest{}, &avro.TransferBatch{}, &avro.AccountFlags{}, &avro.CampaignRequest{}, &avro.Pseudonym{}, &avro.Sealed{},
	}
}

// TestGenerated: records_gen.go is what the generator makes of the .avsc
// files today (run `go generate ./schemas/...` after changing a schema).
func TestGenerated(t *testing.T) {
	want, err := avrogen.FromFS(os.DirFS(".."))
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("records_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("records_gen.go is stale: run go generate ./schemas/...")
	}
}

// TestEveryRecord: every embedded schema but telemetry's has a type.
func TestEveryRecord(t *testing.T) {
	have := map[string]bool{}
	for _, r := range records() {
		have[r.AvroName()] = true
	}
	for _, name := range schemas.Names() {
		if !have[name] && name != schemas.TelemetryEvent && name != schemas.TelemetryBatch {
			t.Errorf("no type for %s", name)
		}
	}
}

// schemaJSON is the parsed .avsc of a record name.
func schemaJSON(t testing.TB, name string) map[string]any {
	t.Helper()
	text, err := schemas.Schema(name)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(text), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// filler fills Go values at random, walking the Avro schema beside the Go
// type: a field whose Go name, order or type does not follow the schema
// fails the test, so the generator's mapping is checked independently.
type filler struct {
	t     testing.TB
	rnd   *rand.Rand
	named map[string]map[string]any // records and enums defined so far, by simple and full name
}

func (f *filler) fill(v reflect.Value, st any, path string) {
	switch s := st.(type) {
	case string:
		f.primitive(v, s, path)
	case []any: // ["null", T]
		if f.rnd.IntN(3) == 0 {
			return // the zero value is null
		}
		switch v.Kind() {
		case reflect.Pointer:
			v.Set(reflect.New(v.Type().Elem()))
			f.fill(v.Elem(), s[1], path)
		default:
			f.fill(v, s[1], path)
			if v.Kind() == reflect.Slice && v.IsNil() {
				v.SetBytes([]byte{}) // non-null empty bytes
			}
		}
	case map[string]any:
		if n, ok := s["name"].(string); ok {
			f.named[n] = s
			if i := strings.LastIndexByte(n, '.'); i >= 0 {
				f.named[n[i+1:]] = s
			}
		}
		switch s["type"] {
		case "record":
			fields := s["fields"].([]any)
			if v.Kind() != reflect.Struct || v.NumField() != len(fields) {
				f.t.Fatalf("%s: Go %s, schema record of %d fields", path, v.Type(), len(fields))
			}
			for i, fv := range fields {
				fd := fv.(map[string]any)
				name := fd["name"].(string)
				if got, want := v.Type().Field(i).Name, avrogen.FieldName(name); got != want {
					f.t.Fatalf("%s: field %d is %s, want %s", path, i, got, want)
				}
				f.fill(v.Field(i), fd["type"], path+"."+name)
			}
		case "enum":
			syms := s["symbols"].([]any)
			if v.Kind() != reflect.String {
				f.t.Fatalf("%s: enum as %s", path, v.Type())
			}
			v.SetString(syms[f.rnd.IntN(len(syms))].(string))
		case "array":
			n := f.rnd.IntN(4)
			if n == 0 {
				return
			}
			sl := reflect.MakeSlice(v.Type(), n, n)
			for i := range n {
				f.fill(sl.Index(i), s["items"], path+"[]")
			}
			v.Set(sl)
		case "long":
			if v.Type() != reflect.TypeFor[time.Time]() {
				f.t.Fatalf("%s: timestamp-millis as %s", path, v.Type())
			}
			ms := f.rnd.Int64N(1<<45) - 1<<44
			v.Set(reflect.ValueOf(time.UnixMilli(ms).UTC()))
		default:
			f.t.Fatalf("%s: schema type %v", path, s["type"])
		}
	default:
		f.t.Fatalf("%s: schema %v", path, st)
	}
}

func (f *filler) primitive(v reflect.Value, s, path string) {
	want := map[string]reflect.Kind{"string": reflect.String, "bytes": reflect.Slice, "int": reflect.Int32,
		"long": reflect.Int64, "double": reflect.Float64, "boolean": reflect.Bool}
	if k, ok := want[s]; ok && v.Kind() != k {
		f.t.Fatalf("%s: %s as %s", path, s, v.Type())
	}
	switch s {
	case "string":
		v.SetString(f.str())
	case "bytes":
		v.SetBytes([]byte(f.str()))
	case "int":
		v.SetInt(int64(int32(f.rnd.Uint32())) >> f.rnd.IntN(32))
	case "long":
		v.SetInt(int64(f.rnd.Uint64()) >> f.rnd.IntN(64))
	case "double":
		switch f.rnd.IntN(6) {
		case 0:
			v.SetFloat(math.Inf(1 - 2*f.rnd.IntN(2)))
		case 1:
			v.SetFloat(math.Copysign(0, -1))
		default:
			v.SetFloat(f.rnd.NormFloat64() * 1e6)
		}
	case "boolean":
		v.SetBool(f.rnd.IntN(2) == 1)
	default:
		st, ok := f.named[s]
		if !ok {
			f.t.Fatalf("%s: type %s", path, s)
		}
		f.fill(v, st, path)
	}
}

func (f *filler) str() string {
	const chars = "abcXYZ/-_é€0"
	var b strings.Builder
	for range f.rnd.IntN(20) {
		r := []rune(chars)
		b.WriteRune(r[f.rnd.IntN(len(r))])
	}
	return b.String()
}

// TestAgainstGoavro: for random values of every type, the typed encoding
// is byte for byte what goavro writes for the same values, goavro reads the
// same values back from it, and the typed decoder reads back what was
// encoded.
func TestAgainstGoavro(t *testing.T) {
	serde := schemas.SingleObject()
	rnd := rand.New(rand.NewPCG(1, 2))
	for _, proto := range records() {
		name := proto.AvroName()
		t.Run(name, func(t *testing.T) {
			f := &filler{t: t, rnd: rnd, named: map[string]map[string]any{}}
			st := schemaJSON(t, name)
			for i := range 300 {
				r := reflect.New(reflect.TypeOf(proto).Elem())
				f.fill(r.Elem(), st, name)
				rec := r.Interface().(schemas.Record)
				framed, err := serde.Marshal(rec)
				if err != nil {
					t.Fatal(err)
				}
				native, err := serde.DecodeAs(name, framed)
				if err != nil {
					t.Fatalf("goavro cannot read value %d: %v\n%+v", i, err, rec)
				}
				checkNative(t, name, r.Elem(), native, st)
				again, err := serde.Encode(name, native)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again, framed) {
					t.Fatalf("value %d: goavro writes\n% x\ntyped\n% x", i, again, framed)
				}
				back := reflect.New(r.Elem().Type()).Interface().(schemas.Record)
				if err := serde.Unmarshal(framed, back); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(back, rec) {
					t.Fatalf("value %d: decoded\n%+v\nencoded\n%+v", i, back, rec)
				}
			}
		})
	}
}

// checkNative compares a Go value with goavro's native of it.
func checkNative(t *testing.T, path string, v reflect.Value, native any, st any) {
	t.Helper()
	switch s := st.(type) {
	case []any:
		isNull := v.IsZero() && !(v.Kind() == reflect.Slice && !v.IsNil())
		if isNull {
			if native != nil {
				t.Fatalf("%s: Go null, goavro %v", path, native)
			}
			return
		}
		m, ok := native.(map[string]any)
		if !ok || len(m) != 1 {
			t.Fatalf("%s: goavro union %v", path, native)
		}
		for _, x := range m {
			if v.Kind() == reflect.Pointer {
				v = v.Elem()
			}
			checkNative(t, path, v, x, s[1])
		}
		return
	case map[string]any:
		switch s["type"] {
		case "record":
			m := native.(map[string]any)
			for i, fv := range s["fields"].([]any) {
				fd := fv.(map[string]any)
				checkNative(t, path+"."+fd["name"].(string), v.Field(i), m[fd["name"].(string)], fd["type"])
			}
			return
		case "array":
			arr, _ := native.([]any)
			if len(arr) != v.Len() {
				t.Fatalf("%s: %d items, goavro %d", path, v.Len(), len(arr))
			}
			for i := range arr {
				checkNative(t, path, v.Index(i), arr[i], s["items"])
			}
			return
		case "enum":
			if native != v.String() {
				t.Fatalf("%s: %q, goavro %v", path, v.String(), native)
			}
			return
		}
	}
	got := v.Interface()
	switch g := got.(type) {
	case time.Time:
		if n, ok := native.(time.Time); !ok || !n.Equal(g) {
			t.Fatalf("%s: %v, goavro %v", path, g, native)
		}
	case []byte:
		if n, ok := native.([]byte); !ok || !bytes.Equal(n, g) {
			t.Fatalf("%s: %x, goavro %v", path, g, native)
		}
	case float64:
		if n, ok := native.(float64); !ok || math.Float64bits(n) != math.Float64bits(g) {
			t.Fatalf("%s: %v, goavro %v", path, g, native)
		}
	default:
		if v.Kind() == reflect.Struct { // a named record type reached by name
			checkNative(t, path, v, native, mustNamed(t, st))
			return
		}
		if fmt.Sprint(native) != fmt.Sprint(got) || reflect.TypeOf(native).Kind() != v.Kind() {
			t.Fatalf("%s: %v (%T), goavro %v (%T)", path, got, got, native, native)
		}
	}
}

// mustNamed finds the definition of a record referred to by name.
func mustNamed(t *testing.T, st any) any {
	name, _ := st.(string)
	for _, r := range records() {
		var found any
		var walk func(any)
		walk = func(x any) {
			switch s := x.(type) {
			case []any:
				for _, y := range s {
					walk(y)
				}
			case map[string]any:
				if n, _ := s["name"].(string); n == name || strings.HasSuffix(n, "."+name) {
					found = s
				}
				for _, k := range []string{"fields", "items"} {
					walk(s[k])
				}
				walk(s["type"])
			}
		}
		walk(schemaJSON(t, r.AvroName()))
		if found != nil {
			return found
		}
	}
	t.Fatalf("no definition of %v", st)
	return nil
}

// TestUnmarshalErrors: another record's framing, truncation and trailing
// bytes are refused with the Serde's error kinds.
func TestUnmarshalErrors(t *testing.T) {
	serde := schemas.SingleObject()
	wm := &avro.Watermark{Task: 3, Tasks: 8, ClosedThroughMs: time.UnixMilli(1_700_000_000_000).UTC()}
	b, err := serde.Marshal(wm)
	if err != nil {
		t.Fatal(err)
	}
	var ds avro.DailyScore
	if err := serde.Unmarshal(b, &ds); !errors.Is(err, schemas.ErrUnknownSchema) {
		t.Errorf("a watermark as a daily score: %v", err)
	}
	if name, err := serde.Name(b); err != nil || name != schemas.Watermark {
		t.Errorf("Name = %q, %v", name, err)
	}
	var got avro.Watermark
	for _, bad := range [][]byte{b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if err := serde.Unmarshal(bad, &got); !errors.Is(err, schemas.ErrMalformed) {
			t.Errorf("Unmarshal(% x) = %v, want ErrMalformed", bad, err)
		}
	}
	if err := serde.Unmarshal(b, &got); err != nil || got != *wm {
		t.Fatalf("Unmarshal = %+v, %v", got, err)
	}
	if _, err := serde.Marshal(&avro.LedgerEntry{Kind: "bogus"}); err == nil {
		t.Error("an enum value outside the schema encoded")
	}
}
