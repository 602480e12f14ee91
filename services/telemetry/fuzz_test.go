package telemetry

import (
	"fmt"
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

// FuzzDedupReference drives Dedup with re-uploads in any order from a box
// that reset its counter twice, and checks every verdict against a plain
// set of the (seq, time) pairs written: no repeat written, no new event
// dropped. Epochs are longer than MaxGap at one sample a second, as
// DedupConfig.MaxGap documents.
func FuzzDedupReference(f *testing.F) {
	f.Add([]byte{30, 25, 40, 0, 1, 2, 3, 200, 100, 50, 7, 7, 7})
	f.Add([]byte{20, 20, 20, 60, 59, 58, 57, 0, 1, 20, 21, 40, 41})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) < 4 {
			return
		}
		type pt struct {
			seq uint64
			t   int64
			id  string
		}
		var pts []pt
		base := int64(1_700_000_000_000)
		for e := 0; e < 3; e++ {
			n := 20 + int(b[e])%40
			for s := 0; s < n; s++ {
				pts = append(pts, pt{uint64(s), base + int64(s)*1000, fmt.Sprintf("e%d-%d", e, s)})
			}
			base += int64(n)*1000 + 5000 // the reboot takes 5 s
		}
		d := NewDedup(DedupConfig{Horizon: 1000 * time.Hour, MaxRanges: 1 << 20, MaxGap: 10 * time.Second})
		seen := map[pt]bool{}
		for _, c := range b[3:] {
			p := pts[int(c)%len(pts)]
			ev := Event{EventID: p.id, DeviceID: "d", VehicleID: "v", Seq: p.seq, TimeMs: p.t}
			v, err := d.Check(&ev)
			if err != nil {
				t.Fatal(err)
			}
			if (v == Duplicate) != seen[p] {
				t.Fatalf("event %s: verdict %v, written before: %v; ranges %+v", p.id, v, seen[p], d.Window("v").Devices[0].Ranges)
			}
			if v == New {
				d.Add(&ev)
				seen[p] = true
			}
		}
	})
}
