package schemas

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// nameConstants returns the values of the string constants in names.go.
func nameConstants(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "names.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	ast.Inspect(f, func(n ast.Node) bool {
		if lit, ok := n.(*ast.BasicLit); ok && lit.Kind == token.STRING {
			s, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			names = append(names, s)
		}
		return true
	})
	return names
}

// TestEmbeddedSchemas: every .avsc parses, is a record named as its file,
// has a goavro codec, and every name in names.go has its file.
func TestEmbeddedSchemas(t *testing.T) {
	cat := embeddedCatalog()
	if err := cat.errs(); err != nil {
		t.Errorf("broken schemas:\n%v", err)
	}
	for _, name := range nameConstants(t) {
		if _, err := Schema(name); err != nil {
			t.Errorf("names.go constant %s: %v", name, err)
		}
	}
	if got := Names(); !slices.IsSorted(got) || len(got) != len(cat.byName) || !slices.Contains(got, DeadLetter) {
		t.Errorf("Names() = %v", got)
	}
	for _, name := range cat.names {
		e := cat.byName[name]
		if e.err != nil {
			continue
		}
		if fp, _ := Fingerprint(name); fp != e.fp || binary.LittleEndian.Uint64(e.header[2:]) != fp {
			t.Errorf("%s: Fingerprint %016x, header % x", name, fp, e.header)
		}
		if !strings.Contains(e.text, `"doc"`) {
			t.Errorf("%s: no doc comments", name)
		}
	}
}

// TestFingerprintsMatchAvsc compares each schema's canonical form and
// fingerprint with testdata/fingerprints.json, written by a second Avro
// implementation (avsc; see stock.js). A schema missing there or with another
// fingerprint fails: a changed fingerprint means records already on the
// topics no longer decode, so regenerate the file only for a deliberate
// change (command in the message).
func TestFingerprintsMatchAvsc(t *testing.T) {
	b, err := os.ReadFile("testdata/fingerprints.json")
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]struct {
		Canonical   string `json:"canonical"`
		Fingerprint string `json:"fingerprint"`
	}
	if err := json.Unmarshal(b, &want); err != nil {
		t.Fatal(err)
	}
	const regen = "regenerate with: NODE_PATH=<dir>/node_modules node schemas/testdata/stock.js fingerprints schemas > schemas/testdata/fingerprints.json"
	cat := embeddedCatalog()
	for _, name := range cat.names {
		e := cat.byName[name]
		if e.err != nil {
			continue // TestEmbeddedSchemas reports it
		}
		w, ok := want[name]
		if !ok {
			t.Errorf("%s: not in testdata/fingerprints.json; %s", name, regen)
			continue
		}
		if e.canonical != w.Canonical {
			t.Errorf("%s: canonical form\n got  %s\n avsc %s", name, e.canonical, w.Canonical)
		}
		if got := fmt.Sprintf("%016x", e.fp); got != w.Fingerprint {
			t.Errorf("%s: fingerprint %s, avsc %s (if the schema change is deliberate: %s)", name, got, w.Fingerprint, regen)
		}
	}
}

func deadLetterNative() map[string]any {
	return map[string]any{
		"stage":            "ingest",
		"reason_code":      "decode",
		"error":            "malformed avro record: empty",
		"source_topic":     "minecart.telemetry.raw",
		"source_partition": int32(3),
		"source_offset":    int64(1 << 40),
		"key":              map[string]any{"bytes": []byte("vehicle-7")},
		"value":            []byte{0xde, 0xad},
		"time":             time.UnixMilli(1_764_000_000_123).UTC(),
	}
}

func TestRoundTripEverySchema(t *testing.T) {
	s := SingleObject()
	for _, name := range Names() {
		text, err := Schema(name)
		if err != nil {
			continue // TestEmbeddedSchemas reports it
		}
		native, _, err := newSample(text)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		b, err := s.Encode(name, native)
		if err != nil {
			t.Errorf("%s: encode: %v", name, err)
			continue
		}
		fp, _ := Fingerprint(name)
		if b[0] != 0xC3 || b[1] != 0x01 || binary.LittleEndian.Uint64(b[2:10]) != fp {
			t.Errorf("%s: header % x, want c3 01 + %016x little-endian", name, b[:10], fp)
		}
		gotName, got, err := s.Decode(b)
		if err != nil || gotName != name {
			t.Errorf("%s: decode: %q, %v", name, gotName, err)
			continue
		}
		if !reflect.DeepEqual(got, native) {
			t.Errorf("%s: decoded\n %#v\nwant\n %#v", name, got, native)
		}
		if got, err := s.DecodeAs(name, b); err != nil || !reflect.DeepEqual(got, native) {
			t.Errorf("%s: DecodeAs: %v", name, err)
		}
	}
}

func TestDeadLetterBytes(t *testing.T) {
	s := SingleObject()
	b, err := s.Encode(DeadLetter, deadLetterNative())
	if err != nil {
		t.Fatal(err)
	}
	// The body by hand, per the Avro binary encoding: strings and bytes are
	// a zigzag varint length and the bytes; int and long zigzag varints; the
	// union branch index first.
	var want []byte
	str := func(s string) { want = binary.AppendVarint(want, int64(len(s))); want = append(want, s...) }
	str("ingest")
	str("decode")
	str("malformed avro record: empty")
	str("minecart.telemetry.raw")
	want = binary.AppendVarint(want, 3)
	want = binary.AppendVarint(want, 1<<40)
	want = binary.AppendVarint(want, 1) // union branch 1: bytes
	str("vehicle-7")
	str("\xde\xad")
	want = binary.AppendVarint(want, 1_764_000_000_123)
	if !bytes.Equal(b[10:], want) {
		t.Errorf("body\n % x\nwant\n % x", b[10:], want)
	}
}

func TestAppendEncode(t *testing.T) {
	s := SingleObject()
	prefix := []byte("prefix")
	dst := append(make([]byte, 0, 512), prefix...)
	out, err := s.AppendEncode(dst, DeadLetter, deadLetterNative())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(out, prefix) || &out[0] != &dst[0] {
		t.Errorf("AppendEncode did not append in place")
	}
	alone, _ := s.Encode(DeadLetter, deadLetterNative())
	if !bytes.Equal(out[len(prefix):], alone) {
		t.Errorf("appended % x, Encode % x", out[len(prefix):], alone)
	}
	bad := deadLetterNative()
	delete(bad, "stage")
	out, err = s.AppendEncode(dst, DeadLetter, bad)
	if err == nil || !bytes.Equal(out, prefix) {
		t.Errorf("AppendEncode of a bad record: %q, %v; want the prefix back and an error", out, err)
	}
	if _, err := s.Encode("minecart.Nope", bad); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("Encode of an unknown name: %v", err)
	}
	if _, err := Schema("minecart.Nope"); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("Schema of an unknown name: %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	s := SingleObject()
	good, err := s.Encode(DeadLetter, deadLetterNative())
	if err != nil {
		t.Fatal(err)
	}
	unknown := slices.Clone(good)
	binary.LittleEndian.PutUint64(unknown[2:], 0x0123456789abcdef)
	for _, c := range []struct {
		name    string
		in      []byte
		is      error
		message string
	}{
		{"nil", nil, ErrMalformed, "empty"},
		{"short header", good[:5], ErrMalformed, "shorter than a single-object header"},
		{"bad marker", append([]byte{0xC3, 0x02}, good[2:]...), ErrMalformed, "c3 02"},
		{"unknown fingerprint", unknown, ErrUnknownSchema, "fingerprint 0123456789abcdef"},
		{"unknown framing", append([]byte{0x7b}, good[1:]...), ErrMalformed, "first byte 7b"},
		{"truncated body", good[:len(good)-3], ErrMalformed, "minecart.DeadLetter"},
		{"header only", good[:10], ErrMalformed, "minecart.DeadLetter"},
		{"trailing bytes", append(slices.Clone(good), 0, 0), ErrMalformed, "2 bytes after the record"},
		{"confluent without registry", []byte{0, 0, 0, 0, 42, 2, 'x'}, ErrUnknownSchema, "id 42"},
		{"short confluent", []byte{0, 0, 1}, ErrMalformed, "shorter than a Confluent header"},
	} {
		_, _, err := s.Decode(c.in)
		if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.message) {
			t.Errorf("%s: %v; want %v containing %q", c.name, err, c.is, c.message)
		}
	}
	if _, err := s.DecodeAs(TelemetryEvent, good); !errors.Is(err, ErrUnknownSchema) || !strings.Contains(err.Error(), "got a minecart.DeadLetter record") {
		t.Errorf("DecodeAs of another schema: %v", err)
	}
}

const goodSchema = `{"type":"record","name":"Good","namespace":"minecart","doc":"d","fields":[{"name":"a","type":"int"}]}`

func TestBrokenSchemaFiles(t *testing.T) {
	cat := loadCatalog(fstest.MapFS{
		"Good.avsc":          {Data: []byte(goodSchema)},
		"Bad.avsc":           {Data: []byte(`{"type":"record","name":"Bad","namespace":"minecart","fields":[{"name":"a","type":"nope"}]}`)},
		"x_Misnamed.avsc":    {Data: []byte(`{"type":"record","name":"Other","namespace":"minecart.x","fields":[]}`)},
		"NotRecord.avsc":     {Data: []byte(`{"type":"enum","name":"NotRecord","namespace":"minecart","symbols":["A"]}`)},
		"Json.avsc":          {Data: []byte(`{`)},
		"ignored/Deep.avsc":  {Data: []byte(`{`)},
		"GoavroRejects.avsc": {Data: []byte(`{"type":"record","name":"GoavroRejects","namespace":"minecart","fields":[{"name":"a","type":"int"},{"name":"a","type":"int"}]}`)},
	})
	if want := []string{"minecart.Bad", "minecart.GoavroRejects", "minecart.Good", "minecart.Json", "minecart.NotRecord", "minecart.x.Misnamed"}; !slices.Equal(cat.names, want) {
		t.Fatalf("names %v, want %v", cat.names, want)
	}
	s := &Serde{cat: cat}
	for name, msg := range map[string]string{
		"minecart.Bad":           `unknown type "nope"`,
		"minecart.x.Misnamed":    "record minecart.x.Other belongs in x_Other.avsc",
		"minecart.NotRecord":     "want a record",
		"minecart.Json":          "schema json",
		"minecart.GoavroRejects": "GoavroRejects.avsc",
	} {
		_, err := s.Encode(name, map[string]any{"a": 1})
		if err == nil || !strings.Contains(err.Error(), msg) {
			t.Errorf("Encode(%s): %v, want %q", name, err, msg)
		}
	}
	b, err := s.Encode("minecart.Good", map[string]any{"a": 1})
	if err != nil {
		t.Fatalf("a good schema beside broken ones: %v", err)
	}
	if _, native, err := s.Decode(b); err != nil || native["a"] != int32(1) {
		t.Errorf("decode %v, %v", native, err)
	}
	_, err = newSerde(t.Context(), SerdeConfig{}, cat)
	for _, f := range []string{"Bad.avsc", "x_Misnamed.avsc", "NotRecord.avsc", "Json.avsc", "GoavroRejects.avsc"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("newSerde error %v does not name %s", err, f)
		}
	}
	if _, err := newSerde(t.Context(), SerdeConfig{}, loadCatalog(fstest.MapFS{})); err == nil {
		t.Error("newSerde with no schemas: no error")
	}
}

func TestNewSerdeSingleObject(t *testing.T) {
	s, err := NewSerde(t.Context(), SerdeConfig{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := s.Encode(DeadLetter, deadLetterNative())
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SingleObject().Encode(DeadLetter, deadLetterNative())
	if !bytes.Equal(a, b) {
		t.Errorf("NewSerde without a registry: % x, SingleObject: % x", a, b)
	}
}

func TestSerdeConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg SerdeConfig
		ok  bool
	}{
		{SerdeConfig{}, true},
		{SerdeConfig{Registry: newFakeRegistry(t), MissTTL: time.Second}, true},
		{SerdeConfig{MissTTL: -time.Second}, false},
		{SerdeConfig{LookupTimeout: -time.Second}, false},
	} {
		if err := c.cfg.Validate(); (err == nil) != c.ok {
			t.Errorf("Validate(%+v) = %v", c.cfg, err)
		}
	}
	if _, err := NewSerde(t.Context(), SerdeConfig{MissTTL: -1}); err == nil {
		t.Error("NewSerde with an invalid config: no error")
	}
}
