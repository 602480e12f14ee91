package telemetry

import (
	"reflect"
	"testing"
	"time"
)

// Invariants of the fuzz tests: no input makes a decoder or the validator
// panic or allocate beyond what the input can hold; whatever a decoder
// accepts re-encodes to something it decodes to the same events; whatever
// the specialised Avro decoder accepts, goavro decodes to the same events.

func FuzzDecodeJSON(f *testing.F) {
	good, _ := EncodeJSON([]Event{sample(1), sample(2)})
	f.Add(good)
	f.Add([]byte(`{"events":[{"event_id":"x","seq":1,"time_ms":1,"lat":1,"lon":2}]}`))
	f.Add([]byte(`{"events":[]}`))
	f.Add([]byte(`{"events":[{"event_id":"x","seq":-1}]}`))
	f.Add([]byte(`{"events":[{"event_id":"\u00e9\ud83d\ude00x","seq":1,"time_ms":1,"lat":1e1,"lon":-0.5,"fuel_pct":null,"fault_codes":["P0301"]}]}`))
	f.Add([]byte(`{"events":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeJSON(b, Limits{MaxEvents: 100})
		if err != nil {
			return
		}
		// What the fast decoder accepts, encoding/json reads the same way.
		ref, err := decodeJSONReference(b, Limits{MaxEvents: 100})
		if err != nil || !reflect.DeepEqual(evs, ref) {
			t.Fatalf("reference decoder differs: %v\nfast %+v\nref  %+v", err, evs, ref)
		}
		again, err := EncodeJSON(evs)
		if err != nil {
			t.Fatal(err)
		}
		evs2, err := DecodeJSON(again, Limits{MaxEvents: 100})
		if err != nil || !reflect.DeepEqual(evs, evs2) {
			t.Fatalf("re-decode: %v", err)
		}
	})
}

func FuzzDecodeAvroBatch(f *testing.F) {
	bc := codec(f, "telemetry_Batch.avsc")
	f.Add(AppendAvroBatch(nil, []Event{sample(1), sample(2)}))
	f.Add([]byte{0})
	f.Add([]byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0})
	f.Add([]byte{0x01, 0x02, 0x00})
	f.Fuzz(func(t *testing.T, b []byte) {
		evs, err := DecodeAvroBatch(b, Limits{MaxEvents: 100})
		if err != nil {
			return
		}
		if got := AppendAvroBatch(nil, evs); len(got) > len(b)+16 {
			t.Fatalf("re-encoding grew: %d -> %d", len(b), len(got))
		}
		native, rest, err := bc.NativeFromBinary(b)
		if err != nil || len(rest) != 0 {
			t.Fatalf("goavro refuses what DecodeAvroBatch accepted: %v", err)
		}
		evs2, err := BatchFromNative(native.(map[string]any), Limits{MaxEvents: 100})
		if err != nil || !reflect.DeepEqual(evs, evs2) {
			t.Fatalf("goavro decodes differently: %v", err)
		}
	})
}

func FuzzDecodeAvro(f *testing.F) {
	e := sample(3)
	f.Add(AppendAvro(nil, &e))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := DecodeAvro(b, Limits{})
		if err != nil {
			return
		}
		if got := AppendAvro(nil, &ev); len(got) != len(b) {
			// Varints may be non-minimal in the input; the event must survive.
			back, err := DecodeAvro(got, Limits{})
			if err != nil || !reflect.DeepEqual(back, ev) {
				t.Fatalf("round trip: %v", err)
			}
		}
	})
}

func FuzzValidate(f *testing.F) {
	e := sample(1)
	f.Add(AppendAvro(nil, &e), int64(0))
	f.Add([]byte{}, int64(-1))
	f.Fuzz(func(t *testing.T, b []byte, skewMs int64) {
		ev, err := DecodeAvro(b, Limits{})
		if err != nil {
			return
		}
		cfg := ValidateConfig{MaxAge: time.Duration(skewMs&0xffffff) * time.Millisecond}
		if err := Validate(&ev, now, cfg); err != nil {
			if CodeOf(err) == CodeDecode {
				t.Fatalf("validator error without a reason code: %v", err)
			}
			return
		}
		Normalize(&ev)
		if err := Validate(&ev, now, cfg); err != nil {
			t.Fatalf("normalised valid event refused: %v", err)
		}
		d := NewDedup(DedupConfig{})
		if v, err := d.Check(&ev); v != New || err != nil {
			t.Fatalf("fresh dedup: %v %v", v, err)
		}
		d.Add(&ev)
		if v, _ := d.Check(&ev); v != Duplicate {
			t.Fatal("added event not a duplicate")
		}
	})
}

func FuzzWindowUnmarshal(f *testing.F) {
	d := NewDedup(DedupConfig{})
	e := sample(1)
	d.Add(&e)
	b, _ := d.Snapshot(nil, e.VehicleID)
	f.Add(b)
	f.Fuzz(func(t *testing.T, b []byte) {
		var w VehicleWindow
		if err := w.UnmarshalBinary(b); err != nil {
			return
		}
		var w2 VehicleWindow
		enc := w.AppendBinary(nil)
		if err := w2.UnmarshalBinary(enc); err != nil || string(w2.AppendBinary(nil)) != string(enc) {
			t.Fatalf("re-encode: %v", err)
		}
	})
}
