// Package wire frames telemetry events as minecart's Kafka values and
// device batches as the gateway's avro/binary bodies: schemas.Serde framing
// (single-object or Confluent) around telemetry's schema-specialised Avro
// codec, with goavro (through the Serde) as the fallback for any other
// writer schema.
package wire

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
)

// Codec encodes and decodes minecart.telemetry.Event values. Safe for
// concurrent use.
type Codec struct {
	serde       *schemas.Serde
	header      []byte // framing of the Event schema as serde writes it
	batchHeader []byte // single-object header of minecart.telemetry.Batch
}

// NewCodec learns serde's framing header for the Event schema by encoding a
// sample with goavro through serde and checking the specialised codec
// writes the same body: a Codec exists only if both agree byte for byte.
func NewCodec(serde *schemas.Serde) (*Codec, error) {
	if serde == nil {
		serde = schemas.SingleObject()
	}
	ev := telemetry.Event{EventID: "probe", DeviceID: "d", VehicleID: "v", Seq: 300, TimeMs: 1764000000123,
		TZ: "UTC", Lat: 1.5, Lon: -2.25, OdometerKm: 7, EngineOn: true, FuelPct: -1, CoolantC: -273, FaultCodes: []string{"P0301"}}
	framed, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		return nil, fmt.Errorf("telemetry codec: %w", err)
	}
	body := telemetry.AppendAvro(nil, &ev)
	if !bytes.HasSuffix(framed, body) || len(framed) == len(body) {
		return nil, errors.New("telemetry codec: specialised Avro body differs from goavro's for schemas/telemetry_Event.avsc")
	}
	fp, err := schemas.Fingerprint(schemas.TelemetryBatch)
	if err != nil {
		return nil, fmt.Errorf("telemetry codec: %w", err)
	}
	bh := binary.LittleEndian.AppendUint64([]byte{0xC3, 0x01}, fp)
	return &Codec{serde: serde, header: framed[:len(framed)-len(body)], batchHeader: bh}, nil
}

// AppendEvent appends ev's framed Avro encoding to dst.
func (c *Codec) AppendEvent(dst []byte, ev *telemetry.Event) []byte {
	dst = append(dst, c.header...)
	return telemetry.AppendAvro(dst, ev)
}

// ErrSchema marks a value that is not a minecart.telemetry.Event (or a
// body that is not a minecart.telemetry.Batch) in a framing this codec
// knows: bad input, never worth a retry.
var ErrSchema = errors.New("not a telemetry record")

// DecodeEvent decodes a framed Event. Values framed with this process's
// header take the specialised decoder; anything else goes through the
// Serde (goavro), so records of another schema version still decode.
// Errors wrapping ErrSchema or a *telemetry.Error are bad input; others
// (a schema registry that cannot be reached) are transient.
func (c *Codec) DecodeEvent(b []byte, lim telemetry.Limits) (telemetry.Event, error) {
	if bytes.HasPrefix(b, c.header) {
		return telemetry.DecodeAvro(b[len(c.header):], lim)
	}
	native, err := c.serde.DecodeAs(schemas.TelemetryEvent, b)
	if err != nil {
		if errors.Is(err, schemas.ErrUnknownSchema) || errors.Is(err, schemas.ErrMalformed) {
			return telemetry.Event{}, fmt.Errorf("%w: %w", ErrSchema, err)
		}
		return telemetry.Event{}, err
	}
	return telemetry.FromNative(native)
}

// Decoder is a Codec's decoder for one stage task: DecodeEvent with the
// ids and zone interned in its own bounded table (telemetry.Interner) and
// the event id aliasing the value, so that the steady state allocates no
// string per event. Not safe for concurrent use: one per processor, so
// tasks processed in parallel (pipelines.Stage.Parallel) share nothing
// mutable.
type Decoder struct {
	c  *Codec
	in *telemetry.Interner
}

// NewDecoder returns a Decoder whose table holds n strings per generation
// (n <= 0: telemetry.DefaultInternCap).
func (c *Codec) NewDecoder(n int) *Decoder {
	return &Decoder{c: c, in: telemetry.NewInterner(n)}
}

// DecodeEvent is Codec.DecodeEvent, with the same values and errors, for
// the stages' hot path: values framed with this process's header are
// decoded by telemetry.DecodeAvroInterned, so DeviceID, VehicleID and TZ
// are shared with earlier events and EventID aliases b (b must not change
// while EventID is in use; strings.Clone it to keep it). Other framings go
// through the Serde as in Codec.DecodeEvent (every string new).
func (d *Decoder) DecodeEvent(b []byte, lim telemetry.Limits) (telemetry.Event, error) {
	if bytes.HasPrefix(b, d.c.header) {
		return telemetry.DecodeAvroInterned(b[len(d.c.header):], lim, d.in)
	}
	return d.c.DecodeEvent(b, lim)
}

// Interner is the Decoder's table (for tests and metrics).
func (d *Decoder) Interner() *telemetry.Interner { return d.in }

// BatchHeader is the 10-byte single-object header an avro/binary body
// starts with: C3 01 and the CRC-64-AVRO fingerprint of
// minecart.telemetry.Batch, little-endian.
func (c *Codec) BatchHeader() []byte { return bytes.Clone(c.batchHeader) }

// AppendBatch appends events as a single-object framed
// minecart.telemetry.Batch (the gateway's avro/binary body) to dst.
func (c *Codec) AppendBatch(dst []byte, events []telemetry.Event) []byte {
	dst = append(dst, c.batchHeader...)
	return telemetry.AppendAvroBatch(dst, events)
}

// DecodeBatch decodes an avro/binary gateway body: single-object framing of
// minecart.telemetry.Batch, nothing else.
func (c *Codec) DecodeBatch(b []byte, lim telemetry.Limits) ([]telemetry.Event, error) {
	if !bytes.HasPrefix(b, c.batchHeader) {
		if len(b) >= 2 && b[0] == 0xC3 && b[1] == 0x01 {
			return nil, fmt.Errorf("%w: single-object fingerprint is not minecart.telemetry.Batch's", ErrSchema)
		}
		return nil, fmt.Errorf("%w: body does not start with the single-object header of minecart.telemetry.Batch", ErrSchema)
	}
	return telemetry.DecodeAvroBatch(b[len(c.batchHeader):], lim)
}

// TranscodeBatch reads an avro/binary gateway body (the framing
// DecodeBatch accepts, with its checks and errors) and appends each event
// to dst as the framed value AppendEvent writes for it, with device,
// vehicle and zone stamped from st where the event leaves them empty,
// without decoding the events into Go values (telemetry.TranscodeAvroBatch).
func (c *Codec) TranscodeBatch(dst []byte, ends []int, b []byte, lim telemetry.Limits, st telemetry.Stamp) ([]byte, []int, *telemetry.Mismatch, error) {
	if !bytes.HasPrefix(b, c.batchHeader) {
		_, err := c.DecodeBatch(b, lim)
		return dst, ends, nil, err
	}
	return telemetry.TranscodeAvroBatch(dst, ends, c.header, b[len(c.batchHeader):], lim, st)
}
