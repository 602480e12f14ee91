package schemas

import (
	"encoding/binary"
	"errors"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/fstest"
)

// collections is a schema with every kind of value the checker walks.
const collections = `{"type":"record","name":"Coll","namespace":"minecart","doc":"test","fields":[
	{"name":"a","type":{"type":"array","items":"string"}},
	{"name":"m","type":{"type":"map","values":"long"}},
	{"name":"n","type":{"type":"array","items":"null"}},
	{"name":"u","type":["null","double",{"type":"enum","name":"E","symbols":["X","Y"]}]},
	{"name":"f","type":{"type":"fixed","name":"F","size":3}},
	{"name":"r","type":["null",{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}]},
	{"name":"b","type":"boolean"},
	{"name":"fl","type":"float"}]}`

func collSerde(t *testing.T) (*Serde, *entry) {
	t.Helper()
	cat := loadCatalog(fstest.MapFS{"Coll.avsc": {Data: []byte(collections)}})
	if err := cat.errs(); err != nil {
		t.Fatal(err)
	}
	return &Serde{cat: cat}, cat.byName["minecart.Coll"]
}

func TestCheckAcceptsWhatGoavroWrites(t *testing.T) {
	s, e := collSerde(t)
	node := map[string]any{"next": map[string]any{"minecart.Node": map[string]any{"next": nil}}}
	for _, native := range []map[string]any{
		{"a": []any{}, "m": map[string]any{}, "n": []any{}, "u": nil, "f": []byte("abc"), "r": nil, "b": false, "fl": float32(0)},
		{
			"a": []any{"x", "", "yz"}, "m": map[string]any{"k": int64(-1), "": int64(1 << 62)},
			"n": []any{nil, nil, nil}, "u": map[string]any{"minecart.E": "Y"}, "f": []byte{0, 0, 0},
			"r": map[string]any{"minecart.Node": node}, "b": true, "fl": float32(1.5),
		},
		{"a": []any{}, "m": map[string]any{}, "n": []any{}, "u": map[string]any{"double": 2.0}, "f": []byte("abc"), "r": nil, "b": false, "fl": float32(0)},
	} {
		b, err := s.Encode("minecart.Coll", native)
		if err != nil {
			t.Fatal(err)
		}
		if rest, err := e.shape.check(b[10:], 0); err != nil || len(rest) != 0 {
			t.Errorf("check(%v) = %d bytes left, %v", native, len(rest), err)
		}
		if _, got, err := s.Decode(b); err != nil || !reflect.DeepEqual(got, native) {
			t.Errorf("decode %v: %v, %v", native, got, err)
		}
	}
	// A block with a negative count carries its size in bytes (spec, "Arrays").
	body := binary.AppendVarint(nil, -2)
	body = binary.AppendVarint(body, 4)
	body = append(body, 2, 'x', 2, 'y', 0)               // a: ["x","y"]
	body = append(body, 0, 0)                            // m: {}, n: []
	body = append(body, 4, 2)                            // u: E.Y
	body = append(body, 'a', 'b', 'c', 0, 1, 0, 0, 0, 0) // f, r: null, b: true, fl: 0
	_, got, err := s.Decode(append(e.header[:], body...))
	if err != nil || !reflect.DeepEqual(got["a"], []any{"x", "y"}) {
		t.Errorf("negative block count: %v, %v", got, err)
	}
}

func TestCheckRejects(t *testing.T) {
	s, e := collSerde(t)
	tail := []byte{0, 0, 0, 'a', 'b', 'c', 0, 1, 0, 0, 0, 0} // m, n, u, f, r, b, fl
	for _, c := range []struct {
		name string
		body []byte
		msg  string
	}{
		{"huge array", binary.AppendVarint(nil, 1<<31-1), "block of 2147483647 items with 0 bytes left"},
		{"array count over bytes left", append(binary.AppendVarint(nil, 20), make([]byte, 19)...), "block of 20 items with 19 bytes left"},
		{"huge negative count", binary.AppendVarint(binary.AppendVarint(nil, -(1<<40)), 1), "block of 1099511627776 items"},
		{"min int64 count", binary.AppendVarint(nil, -1<<63), "block count"},
		{"huge map", append([]byte{0}, binary.AppendVarint(nil, 1<<30)...), "block of 1073741824 items"},
		{"map of 11 needs 22 bytes", append([]byte{0, 22}, make([]byte, 20)...), "block of 11 items with 20 bytes left"},
		{"zero-size items", append([]byte{0, 0}, binary.AppendVarint(nil, maxZeroSize+1)...), "block of 65537 items"},
		{"string longer than input", []byte{2, 40, 'x'}, "length 20 with 1 bytes left"},
		{"negative string length", []byte{2, 1, 'x'}, "length -1"},
		{"union index", append([]byte{0, 0, 0, 6}, tail[4:]...), "union index 3 of 3 branches"},
		{"enum index", append([]byte{0, 0, 0, 4, 4}, tail[3:]...), "enum index 2 of 2 symbols"},
		{"varint overflow", append([]byte{2}, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "overflows"},
		{"empty", nil, "ends early"},
		{"fixed short", []byte{0, 0, 0, 0, 'a'}, "ends early"},
		{"float short", append([]byte{0}, tail[:len(tail)-1]...), "ends early"},
	} {
		_, _, err := s.Decode(append(e.header[:], c.body...))
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("%s: %v, want ErrMalformed with %q", c.name, err, c.msg)
		}
	}
	// Recursion deeper than maxDepth (each level costs the input 1 byte).
	deep := []byte{0, 0, 0, 0, 'a', 'b', 'c', 2}
	for range maxDepth {
		deep = append(deep, 2)
	}
	if _, _, err := s.Decode(append(e.header[:], deep...)); err == nil || !strings.Contains(err.Error(), "deeper than") {
		t.Errorf("deep recursion: %v", err)
	}
}

// TestDecodeHugeBlockCount: a 40-byte record that claims two billion array
// items is refused before goavro sees it. goavro alone would allocate
// 32 GiB for it and the process would die with "fatal error: out of
// memory" (tried on this 24 GiB machine with telemetry.Event's fault_codes).
func TestDecodeHugeBlockCount(t *testing.T) {
	s, e := collSerde(t)
	b := append(e.header[:], binary.AppendVarint(nil, 1<<31-1)...)
	b = append(b, make([]byte, 30)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, _, err := s.Decode(b)
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) {
		t.Fatalf("Decode: %v", err)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("Decode of a %d-byte record allocated %d bytes", len(b), n)
	}
}
