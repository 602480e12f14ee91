package schemas

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// sampleTime is the instant every timestamp field of a sample holds.
var sampleTime = time.UnixMilli(1_764_000_000_123).UTC()

// sample builds, from an Avro schema's JSON, a goavro native value that
// fills every field (the first non-null branch of each union) and the value
// a stock reader (avsc with wrapUnions, no logical types) must decode from
// its encoding, with bytes as {"$bytes": base64}.
type sample struct {
	named  map[string]any  // full name -> schema object
	active map[string]bool // records being sampled (to refuse recursion)
}

func newSample(schema string) (native map[string]any, expected any, err error) {
	var v any
	if err := json.Unmarshal([]byte(schema), &v); err != nil {
		return nil, nil, err
	}
	s := sample{named: make(map[string]any), active: make(map[string]bool)}
	n, e, err := s.value(v, "", "x")
	if err != nil {
		return nil, nil, err
	}
	m, ok := n.(map[string]any)
	if !ok {
		return nil, nil, fmt.Errorf("top-level %T, want a record", n)
	}
	return m, e, nil
}

// value returns the native and expected values for schema v; field names
// the value (for strings).
func (s sample) value(v any, ns, field string) (native, expected any, err error) {
	switch t := v.(type) {
	case string:
		return s.typed(t, nil, ns, field)
	case []any:
		for _, b := range t {
			if b == "null" {
				continue
			}
			n, e, err := s.value(b, ns, field)
			if err != nil {
				return nil, nil, err
			}
			return map[string]any{s.goavroBranch(b, ns): n}, map[string]any{s.avscBranch(b, ns): e}, nil
		}
		return nil, nil, nil
	case map[string]any:
		ts, ok := t["type"].(string)
		if !ok {
			return s.value(t["type"], ns, field)
		}
		return s.typed(ts, t, ns, field)
	}
	return nil, nil, fmt.Errorf("schema %v", v)
}

func (s sample) typed(t string, obj map[string]any, ns, field string) (native, expected any, err error) {
	logical, _ := obj["logicalType"].(string)
	switch t {
	case "null":
		return nil, nil, nil
	case "boolean":
		return true, true, nil
	case "int":
		return int32(7), 7, nil
	case "long":
		switch logical {
		case "timestamp-millis":
			return sampleTime, sampleTime.UnixMilli(), nil
		case "":
			return int64(1_234_567_890_123), 1_234_567_890_123, nil
		}
		return nil, nil, fmt.Errorf("sample: logical type %s not supported", logical)
	case "float":
		return float32(0.5), 0.5, nil
	case "double":
		return 2.25, 2.25, nil
	case "bytes":
		if logical != "" {
			return nil, nil, fmt.Errorf("sample: logical type %s not supported", logical)
		}
		b := []byte("b-" + field)
		return b, map[string]any{"$bytes": base64.StdEncoding.EncodeToString(b)}, nil
	case "string":
		return "s-" + field, "s-" + field, nil
	case "array":
		n, e, err := s.value(obj["items"], ns, field)
		if err != nil {
			return nil, nil, err
		}
		return []any{n, n}, []any{e, e}, nil
	case "map":
		n, e, err := s.value(obj["values"], ns, field)
		if err != nil {
			return nil, nil, err
		}
		return map[string]any{"k": n}, map[string]any{"k": e}, nil
	case "record", "error", "enum", "fixed":
		full := s.fullName(obj, ns)
		s.named[full] = obj
		switch t {
		case "enum":
			sym := obj["symbols"].([]any)[0].(string)
			return sym, sym, nil
		case "fixed":
			b := make([]byte, int(obj["size"].(float64)))
			return b, map[string]any{"$bytes": base64.StdEncoding.EncodeToString(b)}, nil
		}
		if s.active[full] {
			return nil, nil, fmt.Errorf("sample: recursive record %s not supported", full)
		}
		s.active[full] = true
		defer delete(s.active, full)
		natives, expecteds := map[string]any{}, map[string]any{}
		for _, f := range obj["fields"].([]any) {
			fm := f.(map[string]any)
			name := fm["name"].(string)
			n, e, err := s.value(fm["type"], namespaceOf(full), name)
			if err != nil {
				return nil, nil, fmt.Errorf("%s.%s: %w", full, name, err)
			}
			natives[name], expecteds[name] = n, e
		}
		return natives, expecteds, nil
	default: // a named type defined earlier
		obj, full := s.lookup(t, ns)
		if obj == nil {
			return nil, nil, fmt.Errorf("sample: unknown type %s", t)
		}
		m := obj.(map[string]any)
		return s.typed(m["type"].(string), m, namespaceOf(full), field)
	}
}

func (s sample) fullName(obj map[string]any, ns string) string {
	name := obj["name"].(string)
	if strings.Contains(name, ".") {
		return name
	}
	if n, ok := obj["namespace"].(string); ok {
		ns = n
	}
	if ns == "" {
		return name
	}
	return ns + "." + name
}

func (s sample) lookup(name, ns string) (any, string) {
	if obj, ok := s.named[ns+"."+name]; ok && ns != "" {
		return obj, ns + "." + name
	}
	return s.named[name], name
}

// goavroBranch is goavro's union key for branch b: the type name, the full
// name of a named type, or "long.timestamp-millis" for a logical type.
func (s sample) goavroBranch(b any, ns string) string {
	switch t := b.(type) {
	case string:
		if primitives[t] {
			return t
		}
		_, full := s.lookup(t, ns)
		return full
	case map[string]any:
		ts, _ := t["type"].(string)
		switch ts {
		case "record", "enum", "fixed":
			return s.fullName(t, ns)
		}
		if l, ok := t["logicalType"].(string); ok {
			return ts + "." + l
		}
		return ts
	}
	return fmt.Sprint(b)
}

// avscBranch is avsc's union key: the same, but logical types (which this
// reader does not know) go by their underlying type.
func (s sample) avscBranch(b any, ns string) string {
	if m, ok := b.(map[string]any); ok {
		if ts, ok := m["type"].(string); ok && m["logicalType"] != nil {
			return ts
		}
	}
	return s.goavroBranch(b, ns)
}
