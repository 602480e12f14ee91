package schemas

import (
	"encoding/binary"
	"fmt"
)

// Framing bytes.
const (
	singleObjectMagic0 = 0xC3 // Avro single-object encoding: C3 01 + 8-byte LE fingerprint
	singleObjectMagic1 = 0x01
	singleObjectHeader = 10
	confluentMagic     = 0x00 // Confluent wire format: 00 + 4-byte BE schema id
	confluentHeader    = 5
)

// Serde encodes minecart's records as framed Avro and decodes them back. It
// is safe for concurrent use. Build one per process (SingleObject or
// NewSerde) and share it.
type Serde struct {
	cat *catalog
	reg *registry // nil: single-object framing, no registry
}

// SingleObject returns a Serde that writes the Avro single-object encoding:
// C3 01, the schema's CRC-64-AVRO fingerprint (8 bytes, little-endian) and
// the Avro binary body. It needs no registry. A schema whose .avsc is broken
// makes Encode and Decode of that schema fail with the reason; NewSerde
// reports such errors up front instead.
func SingleObject() *Serde { return &Serde{cat: embeddedCatalog()} }

// Encode returns native (a goavro native record) encoded as the record name
// (a constant of names.go), framed.
func (s *Serde) Encode(name string, native map[string]any) ([]byte, error) {
	return s.AppendEncode(make([]byte, 0, 256), name, native)
}

// AppendEncode appends the framed encoding of native as record name to dst
// and returns the extended buffer. On error it returns dst unchanged.
func (s *Serde) AppendEncode(dst []byte, name string, native map[string]any) ([]byte, error) {
	return s.appendFramed(dst, name, func(e *entry, b []byte) ([]byte, error) { return e.codec.BinaryFromNative(b, native) })
}

// appendFramed appends the framing header of record name to dst, then the
// body body appends. On error it returns dst unchanged.
func (s *Serde) appendFramed(dst []byte, name string, body func(e *entry, b []byte) ([]byte, error)) ([]byte, error) {
	e, err := s.cat.lookup(name)
	if err != nil {
		return dst, err
	}
	n := len(dst)
	if s.reg != nil {
		dst = append(dst, confluentMagic)
		dst = binary.BigEndian.AppendUint32(dst, s.reg.ids[name])
	} else {
		dst = append(dst, e.header[:]...)
	}
	out, err := body(e, dst)
	if err != nil {
		return dst[:n], fmt.Errorf("encode %s: %w", name, err)
	}
	return out, nil
}

// Decode decodes a record in either framing (single-object or Confluent
// wire format) and returns its record name and goavro native value. Errors
// wrap ErrUnknownSchema (fingerprint or id not known) or ErrMalformed (bytes
// that are not a valid record); with a registry, other errors mean the
// registry could not be asked and are worth a retry.
func (s *Serde) Decode(b []byte) (name string, native map[string]any, err error) {
	e, body, err := s.schemaOf(b)
	if err != nil {
		return "", nil, err
	}
	native, err = e.decode(body)
	if err != nil {
		return "", nil, err
	}
	return e.name, native, nil
}

// DecodeAs decodes b, which must be a record of schema name; a record of any
// other schema is an error wrapping ErrUnknownSchema, and its body is not
// decoded.
func (s *Serde) DecodeAs(name string, b []byte) (map[string]any, error) {
	e, body, err := s.schemaOf(b)
	if err != nil {
		return nil, err
	}
	if e.name != name {
		return nil, fmt.Errorf("%w: got a %s record, want %s", ErrUnknownSchema, e.name, name)
	}
	return e.decode(body)
}

// Record is a typed Avro record: the types of schemas/avro.
type Record interface {
	// AvroName is the record's full name, one of the embedded schemas.
	AvroName() string
	// AppendAvro appends the record's Avro binary body.
	AppendAvro(dst []byte) ([]byte, error)
	// UnmarshalAvro decodes an Avro binary body written with the
	// embedded schema of the record.
	UnmarshalAvro(body []byte) error
}

// Marshal returns r framed (single-object, or Confluent with a registry).
func (s *Serde) Marshal(r Record) ([]byte, error) {
	return s.AppendMarshal(make([]byte, 0, 256), r)
}

// AppendMarshal appends r framed to dst. On error it returns dst unchanged.
func (s *Serde) AppendMarshal(dst []byte, r Record) ([]byte, error) {
	return s.appendFramed(dst, r.AvroName(), func(_ *entry, b []byte) ([]byte, error) { return r.AppendAvro(b) })
}

// Unmarshal decodes b, a framed record of r's schema, into r. Errors wrap
// ErrUnknownSchema (the framing names another or an unknown schema) or
// ErrMalformed (bytes that are not a valid record), like DecodeAs; with a
// registry, other errors mean it could not be asked. A record written with
// another version of r's schema (a registry id of another writer) is
// resolved to the embedded schema (fields it lacks take their defaults,
// fields it adds are dropped) before it is decoded.
func (s *Serde) Unmarshal(b []byte, r Record) error {
	name := r.AvroName()
	e, body, err := s.schemaOf(b)
	if err != nil {
		return err
	}
	if e.name != name {
		return fmt.Errorf("%w: got a %s record, want %s", ErrUnknownSchema, e.name, name)
	}
	own := s.cat.byName[name]
	if own == nil || own.err != nil {
		_, err := s.cat.lookup(name)
		return err
	}
	if e != own { // another version of the schema, from the registry
		if body, err = own.resolve(e, body); err != nil {
			return err
		}
	}
	if err := r.UnmarshalAvro(body); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// resolve re-encodes body, written with the writer's schema w (a version of
// e's record), with e's schema.
func (e *entry) resolve(w *entry, body []byte) ([]byte, error) {
	native, err := w.decode(body)
	if err != nil {
		return nil, err
	}
	out, err := e.codec.BinaryFromNative(nil, native)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: cannot resolve the writer's schema to ours: %v", ErrMalformed, e.name, err)
	}
	return out, nil
}

// Name returns the record name of a framed value, without decoding it (for
// topics that carry several records, such as scores and watermarks).
func (s *Serde) Name(b []byte) (string, error) {
	e, _, err := s.schemaOf(b)
	if err != nil {
		return "", err
	}
	return e.name, nil
}

// schemaOf reads the framing header of b and returns the writer's schema and
// the Avro body.
func (s *Serde) schemaOf(b []byte) (*entry, []byte, error) {
	if len(b) == 0 {
		return nil, nil, fmt.Errorf("%w: empty", ErrMalformed)
	}
	switch b[0] {
	case singleObjectMagic0:
		if len(b) < singleObjectHeader {
			return nil, nil, fmt.Errorf("%w: %d bytes, shorter than a single-object header", ErrMalformed, len(b))
		}
		if b[1] != singleObjectMagic1 {
			return nil, nil, fmt.Errorf("%w: single-object marker c3 %02x, want c3 01", ErrMalformed, b[1])
		}
		fp := binary.LittleEndian.Uint64(b[2:singleObjectHeader])
		e := s.cat.byFP[fp]
		if e == nil {
			return nil, nil, fmt.Errorf("%w: fingerprint %016x", ErrUnknownSchema, fp)
		}
		return e, b[singleObjectHeader:], nil
	case confluentMagic:
		if len(b) < confluentHeader {
			return nil, nil, fmt.Errorf("%w: %d bytes, shorter than a Confluent header", ErrMalformed, len(b))
		}
		id := binary.BigEndian.Uint32(b[1:confluentHeader])
		if s.reg == nil {
			return nil, nil, fmt.Errorf("%w: schema registry id %d (no registry configured)", ErrUnknownSchema, id)
		}
		e, err := s.reg.resolve(s.cat, id)
		if err != nil {
			return nil, nil, err
		}
		return e, b[confluentHeader:], nil
	default:
		return nil, nil, fmt.Errorf("%w: first byte %02x is neither single-object (c3) nor Confluent (00) framing", ErrMalformed, b[0])
	}
}

// decode decodes an Avro body of e's schema. The body is checked against
// the schema first (see validate.go: goavro would otherwise allocate what a
// hostile block count asks for); a body that fails the check, that goavro
// rejects or that has bytes left over, and (as a safety net) a panic inside
// goavro, all become ErrMalformed errors.
func (e *entry) decode(body []byte) (native map[string]any, err error) {
	rest, err := e.shape.check(body, 0)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, e.name, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %s: %d bytes after the record", ErrMalformed, e.name, len(rest))
	}
	defer func() {
		if r := recover(); r != nil {
			native, err = nil, fmt.Errorf("%w: %s: decoder panic: %v", ErrMalformed, e.name, r)
		}
	}()
	v, rest, err := e.codec.NativeFromBinary(body)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, e.name, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %s: %d bytes after the record", ErrMalformed, e.name, len(rest))
	}
	m, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: %s: decoded a %T, not a record", ErrMalformed, e.name, v)
	}
	return m, nil
}
