package wire

import (
	"errors"
	"reflect"
	"testing"

	"github.com/minecart/minecart/schemas"
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
