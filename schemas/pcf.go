package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// This file implements the Avro specification's Parsing Canonical Form (PCF)
// and the CRC-64-AVRO fingerprint that names a schema in the single-object
// encoding. goavro's CanonicalSchema keeps {"type":"long"} for a logical type
// (the [PRIMITIVES] rule requires "long") and, with nested names, can differ
// between runs, so its fingerprints do not match other Avro implementations
// (see ../shared/kafka.md); this is written from the specification instead:
// https://avro.apache.org/docs/1.12.0/specification/#parsing-canonical-form-for-schemas

// primitives are Avro's primitive type names; a reference to one is never
// qualified with a namespace.
var primitives = map[string]bool{
	"null": true, "boolean": true, "int": true, "long": true,
	"float": true, "double": true, "bytes": true, "string": true,
}

// canonicalForm returns the Parsing Canonical Form of the Avro schema in
// schema (JSON). It applies the specification's transformations:
//
//   - [PRIMITIVES] {"type":"int"} (with any other attribute, such as
//     logicalType) becomes "int";
//   - [FULLNAMES] every name (definition or reference) becomes its full name,
//     resolved against the enclosing namespace;
//   - [STRIP] only name, type, fields, symbols, items, values and size are
//     kept (doc, aliases, default, order, namespace, logicalType, ... go);
//   - [ORDER] attributes appear in the order name, type, fields, symbols,
//     items, values, size;
//   - [STRINGS] strings are written as UTF-8 without needless escapes;
//   - [INTEGERS] integers have no leading zeros;
//   - [WHITESPACE] no whitespace outside strings.
//
// A named type appears in full only the first time; later occurrences are
// its full name. The walk follows the JSON's own order, so the result is the
// same on every run.
func canonicalForm(schema []byte) (string, error) {
	dec := json.NewDecoder(bytes.NewReader(schema))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return "", fmt.Errorf("schema json: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return "", errors.New("schema json: data after the schema")
	}
	c := canonicalizer{defined: make(map[string]bool)}
	if err := c.write(v, ""); err != nil {
		return "", err
	}
	return c.out.String(), nil
}

type canonicalizer struct {
	out     strings.Builder
	defined map[string]bool // full names of the named types seen so far
}

func (c *canonicalizer) write(v any, ns string) error {
	switch s := v.(type) {
	case string:
		return c.writeRef(s, ns)
	case []any: // a union
		c.out.WriteByte('[')
		for i, b := range s {
			if i > 0 {
				c.out.WriteByte(',')
			}
			if err := c.write(b, ns); err != nil {
				return err
			}
		}
		c.out.WriteByte(']')
		return nil
	case map[string]any:
		return c.writeObject(s, ns)
	default:
		return fmt.Errorf("schema: %v is not a type (want a string, array or object)", v)
	}
}

// writeRef writes a type given by name: a primitive or a named type defined
// earlier, looked up in the enclosing namespace and then in the null one
// (as Java's Schema.Names.get does).
func (c *canonicalizer) writeRef(name, ns string) error {
	if primitives[name] {
		c.writeString(name)
		return nil
	}
	full := name
	if !strings.Contains(name, ".") && ns != "" && c.defined[ns+"."+name] {
		full = ns + "." + name
	}
	if !c.defined[full] {
		return fmt.Errorf("schema: unknown type %q", name)
	}
	c.writeString(full)
	return nil
}

func (c *canonicalizer) writeObject(m map[string]any, ns string) error {
	t, ok := m["type"]
	if !ok {
		return errors.New(`schema: object without "type"`)
	}
	ts, ok := t.(string)
	if !ok { // {"type": {...}} or {"type": [...]}: the inner schema
		return c.write(t, ns)
	}
	switch ts {
	case "record", "error", "enum", "fixed":
		full, err := c.define(m, ns)
		if err != nil {
			return err
		}
		c.out.WriteString(`{"name":`)
		c.writeString(full)
		c.out.WriteString(`,"type":`)
		if ts == "error" {
			ts = "record" // an error is a record (Java's SchemaNormalization writes it so)
		}
		c.writeString(ts)
		switch ts {
		case "enum":
			return c.writeSymbols(full, m["symbols"])
		case "fixed":
			return c.writeSize(full, m["size"])
		default:
			return c.writeFields(full, m["fields"], namespaceOf(full))
		}
	case "array":
		items, ok := m["items"]
		if !ok {
			return errors.New(`schema: array without "items"`)
		}
		c.out.WriteString(`{"type":"array","items":`)
		if err := c.write(items, ns); err != nil {
			return err
		}
		c.out.WriteByte('}')
		return nil
	case "map":
		values, ok := m["values"]
		if !ok {
			return errors.New(`schema: map without "values"`)
		}
		c.out.WriteString(`{"type":"map","values":`)
		if err := c.write(values, ns); err != nil {
			return err
		}
		c.out.WriteByte('}')
		return nil
	default: // a primitive in object form, or {"type":"SomeNamedType"}
		return c.writeRef(ts, ns)
	}
}

// define resolves the full name of a record, enum or fixed and records it.
func (c *canonicalizer) define(m map[string]any, ns string) (string, error) {
	name, ok := m["name"].(string)
	if !ok || name == "" {
		return "", fmt.Errorf("schema: %v type without a name", m["type"])
	}
	full := name
	if !strings.Contains(name, ".") {
		if n, ok := m["namespace"]; ok && n != nil {
			s, ok := n.(string)
			if !ok {
				return "", fmt.Errorf("schema: %s: namespace is not a string", name)
			}
			ns = s
		}
		if ns != "" {
			full = ns + "." + name
		}
	}
	if err := validFullName(full); err != nil {
		return "", err
	}
	if primitives[full] {
		return "", fmt.Errorf("schema: %q redefines a primitive type", full)
	}
	if c.defined[full] {
		return "", fmt.Errorf("schema: %q defined twice", full)
	}
	c.defined[full] = true
	return full, nil
}

func (c *canonicalizer) writeFields(record string, v any, ns string) error {
	fields, ok := v.([]any)
	if !ok {
		return fmt.Errorf(`schema: record %s: "fields" is not an array`, record)
	}
	c.out.WriteString(`,"fields":[`)
	for i, f := range fields {
		fm, ok := f.(map[string]any)
		if !ok {
			return fmt.Errorf("schema: record %s: field %d is not an object", record, i)
		}
		name, ok := fm["name"].(string)
		if !ok || !validName(name) {
			return fmt.Errorf("schema: record %s: field %d has no valid name", record, i)
		}
		t, ok := fm["type"]
		if !ok {
			return fmt.Errorf("schema: record %s: field %s has no type", record, name)
		}
		if i > 0 {
			c.out.WriteByte(',')
		}
		c.out.WriteString(`{"name":`)
		c.writeString(name)
		c.out.WriteString(`,"type":`)
		if err := c.write(t, ns); err != nil {
			return fmt.Errorf("field %s.%s: %w", record, name, err)
		}
		c.out.WriteByte('}')
	}
	c.out.WriteString("]}")
	return nil
}

func (c *canonicalizer) writeSymbols(enum string, v any) error {
	symbols, ok := v.([]any)
	if !ok {
		return fmt.Errorf(`schema: enum %s: "symbols" is not an array`, enum)
	}
	c.out.WriteString(`,"symbols":[`)
	for i, s := range symbols {
		str, ok := s.(string)
		if !ok || !validName(str) {
			return fmt.Errorf("schema: enum %s: symbol %v is not a valid name", enum, s)
		}
		if i > 0 {
			c.out.WriteByte(',')
		}
		c.writeString(str)
	}
	c.out.WriteString("]}")
	return nil
}

func (c *canonicalizer) writeSize(fixed string, v any) error {
	num, ok := v.(json.Number)
	if !ok {
		return fmt.Errorf(`schema: fixed %s: "size" is not a number`, fixed)
	}
	size, err := strconv.ParseUint(num.String(), 10, 31)
	if err != nil {
		return fmt.Errorf("schema: fixed %s: size %s: %w", fixed, num, err)
	}
	c.out.WriteString(`,"size":`)
	c.out.WriteString(strconv.FormatUint(size, 10)) // [INTEGERS]
	c.out.WriteByte('}')
	return nil
}

// writeString writes s as a JSON string with only the escapes JSON requires
// ([STRINGS]: other characters, non-ASCII included, are written as UTF-8).
// Valid names never need escaping; this is for robustness.
func (c *canonicalizer) writeString(s string) {
	c.out.WriteByte('"')
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b == '"' || b == '\\':
			c.out.WriteByte('\\')
			c.out.WriteByte(b)
		case b < 0x20:
			fmt.Fprintf(&c.out, `\u%04x`, b)
		default:
			c.out.WriteByte(b)
		}
	}
	c.out.WriteByte('"')
}

// namespaceOf returns the namespace part of a full name ("" for none).
func namespaceOf(full string) string {
	if i := strings.LastIndexByte(full, '.'); i >= 0 {
		return full[:i]
	}
	return ""
}

// validName reports whether s matches Avro's name rule [A-Za-z_][A-Za-z0-9_]*.
func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		letter := b == '_' || (b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z')
		if !letter && (i == 0 || b < '0' || b > '9') {
			return false
		}
	}
	return true
}

func validFullName(full string) error {
	for _, part := range strings.Split(full, ".") {
		if !validName(part) {
			return fmt.Errorf("schema: %q is not a valid Avro full name", full)
		}
	}
	return nil
}

// crc64AvroEmpty is the CRC-64-AVRO fingerprint of empty input; it is also
// the polynomial of the Rabin fingerprint the specification defines.
const crc64AvroEmpty uint64 = 0xc15d213aa4d7a795

var crc64AvroTable = func() (t [256]uint64) {
	for i := range t {
		fp := uint64(i)
		for range 8 {
			fp = (fp >> 1) ^ (crc64AvroEmpty & -(fp & 1))
		}
		t[i] = fp
	}
	return t
}()

// fingerprint64 returns the CRC-64-AVRO (Rabin) fingerprint of b, as given in
// the specification's "Schema Fingerprints" section.
func fingerprint64(b []byte) uint64 {
	fp := crc64AvroEmpty
	for _, c := range b {
		fp = (fp >> 8) ^ crc64AvroTable[byte(fp)^c]
	}
	return fp
}
