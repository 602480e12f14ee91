package ingest

import (
	"context"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

func TestOdometerMarkFormat(t *testing.T) {
	for _, c := range []struct {
		ms int64
		km float64
		s  string
	}{{1764000000000, 123456.789, "1,1764000000000,123456.789"}, {0, 0.001, "1,0,0.001"}, {-5, 1e7, "1,-5,1e+07"}} {
		b := AppendOdometerMark(nil, c.ms, c.km)
		if string(b) != c.s {
			t.Fatalf("AppendOdometerMark(%d, %v) = %q, want %q", c.ms, c.km, b, c.s)
		}
		ms, km, err := ParseOdometerMark(b)
		if err != nil || ms != c.ms || km != c.km {
			t.Fatalf("round trip %q: %d %v %v", b, ms, km, err)
		}
	}
	for _, bad := range []string{"", "1", "1,2", "2,1764000000000,5", "1,x,5", "1,5,x", "1,5,NaN", "1,5,-1", "1,5,1e8", "1,5,5,5", " 1,5,5", "1,5,+Inf"} {
		if _, _, err := ParseOdometerMark([]byte(bad)); !errors.Is(err, ErrOdometerMark) {
			t.Errorf("ParseOdometerMark(%q) = %v, want ErrOdometerMark", bad, err)
		}
	}
}

// FuzzParseOdometerMark: any value either fails with ErrOdometerMark or
// parses into a reading that formats and parses back to the same.
func FuzzParseOdometerMark(f *testing.F) {
	f.Add([]byte("1,1764000000000,123456.789"))
	f.Add([]byte("1,-1,0"))
	f.Add([]byte("1,,"))
	f.Fuzz(func(t *testing.T, v []byte) {
		ms, km, err := ParseOdometerMark(v)
		if err != nil {
			if !errors.Is(err, ErrOdometerMark) {
				t.Fatalf("%q: %v", v, err)
			}
			return
		}
		ms2, km2, err := ParseOdometerMark(AppendOdometerMark(nil, ms, km))
		if err != nil || ms2 != ms || km2 != km {
			t.Fatalf("%q: %d %v, again %d %v %v", v, ms, km, ms2, km2, err)
		}
	})
}

// TestOdometerMarks: an event whose odometer contradicts the vehicle's
// newest reading is written with the mark (not dead-lettered), the events
// after a rollback are written unmarked (ingest follows the new reading),
// and an honest box uploading its batches in any order is never marked.
func TestOdometerMarks(t *testing.T) {
	codec, _ := wire.NewCodec(schemas.SingleObject())
	raw := func(ev telemetry.Event) pipelines.Record {
		return pipelines.Record{Topic: pipelines.TopicTelemetryRaw, Key: []byte(ev.VehicleID), Value: codec.AppendEvent(nil, &ev),
			Headers: []pipelines.Header{{Key: "device", Value: []byte(ev.DeviceID)}}}
	}
	run := func(p *Processor, evs []telemetry.Event) (marks map[uint64]string) {
		t.Helper()
		var out collector
		marks = map[uint64]string{}
		for _, ev := range evs {
			n := len(out.out)
			if err := p.Process(context.Background(), raw(ev), &out); err != nil || len(out.out) != n+1 {
				t.Fatalf("seq %d: err %v, emitted %d", ev.Seq, err, len(out.out)-n)
			}
			e := out.out[n]
			got, err := codec.DecodeEvent(e.value, telemetry.Limits{})
			if err != nil || got.EventID != ev.EventID {
				t.Fatalf("seq %d: clean record %v", ev.Seq, err)
			}
			for _, h := range e.headers {
				if h.Key == HeaderOdometer {
					marks[ev.Seq] = string(h.Value)
				}
			}
		}
		return marks
	}
	// Honest: 200 events with a rising odometer, uploaded as 8 batches in
	// random order (20 rounds).
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 20 {
		var evs []telemetry.Event
		for s := 1; s <= 200; s++ {
			evs = append(evs, event("h", s))
		}
		var bs [][]telemetry.Event
		for i := 0; i < 200; i += 25 {
			bs = append(bs, evs[i:i+25])
		}
		rng.Shuffle(len(bs), func(i, j int) { bs[i], bs[j] = bs[j], bs[i] })
		p := newProcessor(t, Config{})
		var all []telemetry.Event
		for _, b := range bs {
			all = append(all, b...)
		}
		if m := run(p, all); len(m) != 0 {
			t.Fatalf("round %d: honest out-of-order upload marked: %v", round, m)
		}
	}
	// Rollback at seq 11 (by 500 km): 11 marked with seq 10's reading, 12..20 follow the new reading.
	reg := prometheus.NewRegistry()
	p := newProcessor(t, Config{Registerer: reg})
	var evs []telemetry.Event
	for s := 1; s <= 20; s++ {
		ev := event("c", s)
		if s > 10 {
			ev.OdometerKm -= 500
		}
		evs = append(evs, ev)
	}
	m := run(p, evs)
	ref := event("c", 10)
	if len(m) != 1 || m[11] != string(AppendOdometerMark(nil, ref.TimeMs, ref.OdometerKm)) {
		t.Fatalf("marks %v, want only seq 11 marked with seq 10's reading", m)
	}
	// A late upload from before the rollback reads more than the newest
	// (later) reading: marked too, with that reading.
	late := event("c", 5)
	late.Seq, late.EventID = 105, "c-late"
	m = run(p, []telemetry.Event{late})
	last := evs[19]
	if m[105] != string(AppendOdometerMark(nil, last.TimeMs, last.OdometerKm)) {
		t.Fatalf("late reading above a later one: marks %v", m)
	}
	if got := counter(t, reg, "minecart_ingest_odometer_marks_total"); got != 2 {
		t.Fatalf("minecart_ingest_odometer_marks_total = %v, want 2", got)
	}
}
