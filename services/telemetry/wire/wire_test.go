package wire

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/registry"
	"github.com/minecart/minecart/services/telemetry"
)

func event() telemetry.Event {
	return telemetry.Event{EventID: "e1", DeviceID: "d1", VehicleID: "v1", Seq: 9, TimeMs: 1764000000000, TZ: "Europe/Paris",
		Lat: 48.85, Lon: 2.35, SpeedKmh: 40, OdometerKm: 100, FuelPct: -1, CoolantC: -273, FaultCodes: []string{"P0420"}}
}

func TestEventRoundTripThroughSerde(t *testing.T) {
	serde := schemas.SingleObject()
	c, err := NewCodec(serde)
	if err != nil {
		t.Fatal(err)
	}
	ev := event()
	b := c.AppendEvent(nil, &ev)
	// goavro through the Serde reads what the specialised codec framed.
	native, err := serde.DecodeAs(schemas.TelemetryEvent, b)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := telemetry.FromNative(native); err != nil || !reflect.DeepEqual(got, ev) {
		t.Fatalf("serde decode: %+v %v", got, err)
	}
	if got, err := c.DecodeEvent(b, telemetry.Limits{}); err != nil || !reflect.DeepEqual(got, ev) {
		t.Fatalf("fast decode: %+v %v", got, err)
	}
	// A value the Serde wrote (goavro) decodes too.
	b2, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		t.Fatal(err)
	}
	if string(b2) != string(b) {
		t.Fatalf("framed bytes differ from the Serde's:\n%x\n%x", b, b2)
	}
	// Another schema's record is ErrSchema, not a transient error.
	other, err := serde.Encode(schemas.TelemetryBatch, telemetry.BatchToNative([]telemetry.Event{ev}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DecodeEvent(other, telemetry.Limits{}); !errors.Is(err, ErrSchema) {
		t.Fatalf("batch decoded as event: %v", err)
	}
	if _, err := c.DecodeEvent([]byte{1, 2, 3}, telemetry.Limits{}); !errors.Is(err, ErrSchema) {
		t.Fatalf("garbage: %v", err)
	}
}

func TestBatch(t *testing.T) {
	serde := schemas.SingleObject()
	c, err := NewCodec(serde)
	if err != nil {
		t.Fatal(err)
	}
	evs := []telemetry.Event{event(), event()}
	evs[1].Seq = 10
	b := c.AppendBatch(nil, evs)
	native, err := serde.DecodeAs(schemas.TelemetryBatch, b)
	if err != nil {
		t.Fatalf("Serde does not read the gateway body framing: %v", err)
	}
	if got, err := telemetry.BatchFromNative(native, telemetry.Limits{}); err != nil || !reflect.DeepEqual(got, evs) {
		t.Fatalf("%v", err)
	}
	if got, err := c.DecodeBatch(b, telemetry.Limits{}); err != nil || !reflect.DeepEqual(got, evs) {
		t.Fatalf("%v", err)
	}
	if _, err := c.DecodeBatch(b[10:], telemetry.Limits{}); !errors.Is(err, ErrSchema) {
		t.Fatalf("plain body accepted: %v", err)
	}
}

// TestDecodeEventFramings: events framed by either serde (single-object, or
// Confluent with a registry) take telemetry's decoder and decode as the
// serde does; a value in the other framing still decodes, through the
// serde; a truncated body is refused.
func TestDecodeEventFramings(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	confluent, err := registry.NewSerde(t.Context(), registry.Config{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ev := telemetry.Event{EventID: "e-1", DeviceID: "d-1", VehicleID: "v-1", Seq: 3, TimeMs: 1_763_000_000_000, TZ: "UTC",
		Lat: 52.5, Lon: 13.4, HDOP: 0.8, SpeedKmh: 50, OdometerKm: 12.5, EngineOn: true, FuelPct: -1, CoolantC: -273,
		FaultCodes: []string{"P0301"}}
	for name, s := range map[string]*schemas.Serde{"single-object": schemas.SingleObject(), "confluent": confluent} {
		c, err := NewCodec(s)
		if err != nil {
			t.Fatal(name, err)
		}
		b, err := s.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
		if err != nil {
			t.Fatal(name, err)
		}
		if got := c.AppendEvent(nil, &ev); !bytes.Equal(got, b) {
			t.Fatalf("%s: codec writes %x, serde %x", name, got, b)
		}
		fast, err := c.DecodeEvent(b, telemetry.Limits{})
		if err != nil {
			t.Fatal(name, err)
		}
		m, err := s.DecodeAs(schemas.TelemetryEvent, b)
		if err != nil {
			t.Fatal(name, err)
		}
		slow, err := telemetry.FromNative(m)
		if err != nil {
			t.Fatal(name, err)
		}
		if !reflect.DeepEqual(fast, slow) || fast.VehicleID != "v-1" || fast.FaultCodes[0] != "P0301" {
			t.Errorf("%s: codec %+v, serde %+v", name, fast, slow)
		}
		if _, err := c.DecodeEvent(b[:len(b)-3], telemetry.Limits{}); err == nil {
			t.Errorf("%s: truncated body accepted", name)
		}
	}
	c, err := NewCodec(confluent)
	if err != nil {
		t.Fatal(err)
	}
	b, err := schemas.SingleObject().Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.DecodeEvent(b, telemetry.Limits{}); err != nil || got.EventID != "e-1" {
		t.Errorf("single-object value through the Confluent codec: %+v %v", got, err)
	}
}

// TestTranscodeBatch: the values TranscodeBatch writes are the framed
// values AppendEvent writes for the decoded, stamped events; a body in
// another framing gets DecodeBatch's error.
func TestTranscodeBatch(t *testing.T) {
	c, err := NewCodec(schemas.SingleObject())
	if err != nil {
		t.Fatal(err)
	}
	evs := []telemetry.Event{event(), event()}
	evs[1].DeviceID, evs[1].VehicleID, evs[1].TZ = "", "", ""
	body := c.AppendBatch(nil, evs)
	st := telemetry.Stamp{DeviceID: "d1", VehicleID: "v1", TZ: "Europe/Berlin"}
	vals, ends, mis, err := c.TranscodeBatch(nil, nil, body, telemetry.Limits{}, st)
	if err != nil || mis != nil || len(ends) != 2 {
		t.Fatalf("%v %+v %v", err, mis, ends)
	}
	evs[1].DeviceID, evs[1].VehicleID, evs[1].TZ = st.DeviceID, st.VehicleID, st.TZ
	var want []byte
	for i := range evs {
		want = c.AppendEvent(want, &evs[i])
		if ends[i] != len(want) {
			t.Fatalf("end %d: %d, want %d", i, ends[i], len(want))
		}
	}
	if !bytes.Equal(vals, want) {
		t.Fatalf("values differ:\n%x\n%x", vals, want)
	}
	for _, b := range [][]byte{body[10:], append([]byte{0xC3, 0x01}, body[3:]...)} {
		_, _, _, err := c.TranscodeBatch(nil, nil, b, telemetry.Limits{}, st)
		_, derr := c.DecodeBatch(b, telemetry.Limits{})
		if !errors.Is(err, ErrSchema) || err.Error() != derr.Error() {
			t.Fatalf("%v, DecodeBatch %v", err, derr)
		}
	}
}

// TestDecoderMatchesCodec: a task's Decoder gives Codec.DecodeEvent's
// events and errors in every framing (the specialised path interning, the
// Serde path not), and decodes a known event without allocating.
func TestDecoderMatchesCodec(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	confluent, err := registry.NewSerde(t.Context(), registry.Config{URL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ev := event()
	other, err := schemas.SingleObject().Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]*schemas.Serde{"single-object": schemas.SingleObject(), "confluent": confluent} {
		c, err := NewCodec(s)
		if err != nil {
			t.Fatal(name, err)
		}
		d := c.NewDecoder(0)
		b := c.AppendEvent(nil, &ev)
		for _, v := range [][]byte{b, b[:len(b)-3], other, {0xC3, 0x01, 1, 2}, nil} {
			want, werr := c.DecodeEvent(v, telemetry.Limits{})
			got, gerr := d.DecodeEvent(v, telemetry.Limits{})
			if fmt.Sprint(werr) != fmt.Sprint(gerr) || errors.Is(gerr, ErrSchema) != errors.Is(werr, ErrSchema) || !reflect.DeepEqual(got, want) {
				t.Errorf("%s %x: decoder %+v %v, codec %+v %v", name, v, got, gerr, want, werr)
			}
		}
		ev2 := ev
		ev2.FaultCodes = nil
		b2 := c.AppendEvent(nil, &ev2)
		if _, err := d.DecodeEvent(b2, telemetry.Limits{}); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(50, func() { d.DecodeEvent(b2, telemetry.Limits{}) }); n != 0 {
			t.Errorf("%s: %v allocations per known event, want 0", name, n)
		}
	}
}
