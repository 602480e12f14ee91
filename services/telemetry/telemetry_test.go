package telemetry

import (
	"errors"
	"math"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/linkedin/goavro/v2"
)

var now = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)

func sample(seq uint64) Event {
	return Event{
		EventID: "e-" + string(rune('a'+seq%26)), DeviceID: "dev-1", VehicleID: "veh-1", Seq: seq,
		TimeMs: now.Add(-time.Hour).UnixMilli() + int64(seq)*1000, TZ: "Asia/Shanghai",
		Lat: 31.23, Lon: 121.47, HDOP: 0.9, SpeedKmh: 52.5, HeadingDeg: 90, AccelLonMS2: -1.2, AccelLatMS2: 0.4,
		SpeedLimitKmh: 60, OdometerKm: 12345.6 + float64(seq)*0.01, EngineOn: true, FuelPct: 55, BatteryV: 13.9,
		CoolantC: 88, FaultCodes: []string{"P0301"},
	}
}

func codec(t testing.TB, file string) *goavro.Codec {
	t.Helper()
	b, err := os.ReadFile("../../schemas/" + file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := goavro.NewCodec(string(b))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestDecodeJSON(t *testing.T) {
	ev := sample(7)
	good, err := EncodeJSON([]Event{ev})
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeJSON(good, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []Event{ev}) {
		t.Fatalf("round trip: %+v", got)
	}
	min, err := DecodeJSON([]byte(`{"events":[{"event_id":"x","seq":0,"time_ms":1,"lat":1,"lon":2}]}`), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if min[0].FuelPct != -1 || min[0].CoolantC != -273 {
		t.Fatalf("defaults not applied: %+v", min[0])
	}
	long := strings.Repeat("x", 65)
	for _, tc := range []struct{ name, body, code string }{
		{"not json", `{`, CodeDecode},
		{"unknown field", `{"events":[{"event_id":"x","seq":1,"time_ms":1,"lat":1,"lon":2,"bogus":1}]}`, CodeDecode},
		{"trailing", `{"events":[{"event_id":"x","seq":1,"time_ms":1,"lat":1,"lon":2}]} {}`, CodeDecode},
		{"empty", `{"events":[]}`, CodeEmptyBatch},
		{"no seq", `{"events":[{"event_id":"x","time_ms":1,"lat":1,"lon":2}]}`, CodeMissingField},
		{"no time", `{"events":[{"event_id":"x","seq":1,"lat":1,"lon":2}]}`, CodeMissingField},
		{"no lat", `{"events":[{"event_id":"x","seq":1,"time_ms":1,"lon":2}]}`, CodeMissingField},
		{"no id", `{"events":[{"seq":1,"time_ms":1,"lat":1,"lon":2}]}`, CodeMissingField},
		{"negative seq", `{"events":[{"event_id":"x","seq":-1,"time_ms":1,"lat":1,"lon":2}]}`, CodeDecode},
		{"long id", `{"events":[{"event_id":"` + long + `","seq":1,"time_ms":1,"lat":1,"lon":2}]}`, CodeFieldTooLong},
		{"control char", `{"events":[{"event_id":"a\u0001","seq":1,"time_ms":1,"lat":1,"lon":2}]}`, CodeBadID},
		{"too many", `{"events":[{"event_id":"x","seq":1,"time_ms":1,"lat":1,"lon":2},{"event_id":"y","seq":2,"time_ms":1,"lat":1,"lon":2},{"event_id":"z","seq":3,"time_ms":1,"lat":1,"lon":2}]}`, CodeTooManyEvents},
	} {
		_, err := DecodeJSON([]byte(tc.body), Limits{MaxEvents: 2})
		if err == nil || CodeOf(err) != tc.code {
			t.Errorf("%s: got %v, want code %s", tc.name, err, tc.code)
		}
	}
	_, err = DecodeJSON([]byte(`{"events":[{"event_id":"x","seq":1,"time_ms":1,"lat":1,"lon":2},{"seq":1,"time_ms":1,"lat":1,"lon":2}]}`), Limits{})
	var ie *IndexError
	if !errors.As(err, &ie) || ie.Index != 1 {
		t.Errorf("want the index of the bad event, got %v", err)
	}
}

// TestAvroMatchesGoavro proves the specialised codec writes exactly what
// goavro writes for schemas/telemetry_*.avsc and reads what goavro writes.
func TestAvroMatchesGoavro(t *testing.T) {
	ec, bc := codec(t, "telemetry_Event.avsc"), codec(t, "telemetry_Batch.avsc")
	evs := []Event{sample(1), sample(2), {EventID: "e", Seq: 1 << 40, TimeMs: -5, Lat: math.Inf(1), FaultCodes: nil}}
	for i := range evs {
		want, err := ec.BinaryFromNative(nil, ToNative(&evs[i]))
		if err != nil {
			t.Fatal(err)
		}
		if got := AppendAvro(nil, &evs[i]); string(got) != string(want) {
			t.Fatalf("event %d: AppendAvro differs from goavro\n%x\n%x", i, got, want)
		}
		back, err := DecodeAvro(want, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(back, evs[i]) {
			t.Fatalf("event %d: DecodeAvro %+v", i, back)
		}
		native, _, err := ec.NativeFromBinary(want)
		if err != nil {
			t.Fatal(err)
		}
		fromNative, err := FromNative(native.(map[string]any))
		if err != nil || !reflect.DeepEqual(fromNative, evs[i]) {
			t.Fatalf("event %d: FromNative %+v %v", i, fromNative, err)
		}
	}
	batch := evs[:2]
	want, err := bc.BinaryFromNative(nil, BatchToNative(batch))
	if err != nil {
		t.Fatal(err)
	}
	if got := AppendAvroBatch(nil, batch); string(got) != string(want) {
		t.Fatalf("AppendAvroBatch differs from goavro")
	}
	got, err := DecodeAvroBatch(want, Limits{})
	if err != nil || !reflect.DeepEqual(got, batch) {
		t.Fatalf("DecodeAvroBatch: %v", err)
	}
	native, _, err := bc.NativeFromBinary(want)
	if err != nil {
		t.Fatal(err)
	}
	got, err = BatchFromNative(native.(map[string]any), Limits{})
	if err != nil || !reflect.DeepEqual(got, batch) {
		t.Fatalf("BatchFromNative: %v", err)
	}
}

func TestDecodeAvroBatchRefuses(t *testing.T) {
	ev := sample(1)
	for _, tc := range []struct {
		name string
		body []byte
		code string
	}{
		{"empty input", nil, CodeDecode},
		{"empty batch", []byte{0}, CodeEmptyBatch},
		{"huge count", []byte{0xfe, 0xff, 0xff, 0xff, 0x0f, 0}, CodeTooManyEvents},
		{"count beyond bytes", append([]byte{0x08}, AppendAvro(nil, &ev)...), CodeDecode},
		{"trailing", append(AppendAvroBatch(nil, []Event{ev}), 1), CodeDecode},
		{"truncated", AppendAvroBatch(nil, []Event{ev})[:40], CodeDecode},
		{"long id", AppendAvroBatch(nil, []Event{{EventID: strings.Repeat("x", 65), FaultCodes: nil}}), CodeFieldTooLong},
	} {
		_, err := DecodeAvroBatch(tc.body, Limits{MaxEvents: 1000})
		if err == nil || CodeOf(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := sample(1)
	if err := Validate(&ok, now, ValidateConfig{MaxAge: 7 * 24 * time.Hour}); err != nil {
		t.Fatalf("good event refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Event)
		code string
	}{
		{"no device", func(e *Event) { e.DeviceID = "" }, CodeMissingField},
		{"no vehicle", func(e *Event) { e.VehicleID = "" }, CodeMissingField},
		{"no tz", func(e *Event) { e.TZ = "" }, CodeMissingField},
		{"no time", func(e *Event) { e.TimeMs = 0 }, CodeMissingField},
		{"bad tz", func(e *Event) { e.TZ = "Mars/Olympus" }, CodeBadTZ},
		{"local tz", func(e *Event) { e.TZ = "Local" }, CodeBadTZ},
		{"nan", func(e *Event) { e.SpeedKmh = math.NaN() }, CodeNotFinite},
		{"inf", func(e *Event) { e.Lon = math.Inf(-1) }, CodeNotFinite},
		{"lat", func(e *Event) { e.Lat = 90.5 }, CodePosition},
		{"lon", func(e *Event) { e.Lon = -180.1 }, CodePosition},
		{"null island", func(e *Event) { e.Lat, e.Lon = 0, 0 }, CodePositionZero},
		{"speed high", func(e *Event) { e.SpeedKmh = 300.1 }, CodeSpeed},
		{"speed neg", func(e *Event) { e.SpeedKmh = -1 }, CodeSpeed},
		{"accel", func(e *Event) { e.AccelLonMS2, e.AccelLatMS2 = 25, 20 }, CodeAccel},
		{"heading", func(e *Event) { e.HeadingDeg = 361 }, CodeHeading},
		{"fuel", func(e *Event) { e.FuelPct = 101 }, CodeSensor},
		{"battery", func(e *Event) { e.BatteryV = -2 }, CodeSensor},
		{"coolant", func(e *Event) { e.CoolantC = -100 }, CodeSensor},
		{"hdop", func(e *Event) { e.HDOP = -1 }, CodeSensor},
		{"odometer", func(e *Event) { e.OdometerKm = -1 }, CodeOdometerRange},
		{"dtc", func(e *Event) { e.FaultCodes = []string{"X1234"} }, CodeBadFaultCode},
		{"dtc short", func(e *Event) { e.FaultCodes = []string{"P03"} }, CodeBadFaultCode},
		{"1970", func(e *Event) { e.TimeMs = 1000 }, CodeTimeRange},
		{"future", func(e *Event) { e.TimeMs = now.Add(6 * time.Minute).UnixMilli() }, CodeFuture},
		{"old", func(e *Event) { e.TimeMs = now.Add(-8 * 24 * time.Hour).UnixMilli() }, CodeTooOld},
		{"long tz", func(e *Event) { e.TZ = strings.Repeat("A", 65) }, CodeFieldTooLong},
	} {
		ev := sample(1)
		tc.mod(&ev)
		err := Validate(&ev, now, ValidateConfig{MaxAge: 7 * 24 * time.Hour})
		if err == nil || CodeOf(err) != tc.code {
			t.Errorf("%s: got %v, want %s", tc.name, err, tc.code)
		}
	}
	edge := sample(1)
	edge.TimeMs = now.Add(5 * time.Minute).UnixMilli()
	edge.FuelPct, edge.CoolantC, edge.HeadingDeg = -1, -273, 360
	edge.FaultCodes = []string{"u0100", "P0301AB"}
	if err := Validate(&edge, now, ValidateConfig{}); err != nil {
		t.Fatalf("edge values refused: %v", err)
	}
	old := sample(1)
	old.TimeMs = now.AddDate(-5, 0, 0).UnixMilli()
	if err := Validate(&old, now, ValidateConfig{}); err != nil {
		t.Fatalf("MaxAge 0 must mean no horizon: %v", err)
	}
	Normalize(&edge)
	if edge.HeadingDeg != 0 || edge.FaultCodes[0] != "U0100" {
		t.Fatalf("Normalize: %+v", edge)
	}
}

func ev(dev string, seq uint64, tMs int64, odo float64) *Event {
	return &Event{EventID: dev + "-" + string(rune('A'+seq%50)) + string(rune('a'+tMs%26)), DeviceID: dev, VehicleID: "v", Seq: seq, TimeMs: tMs, OdometerKm: odo}
}

func observe(t *testing.T, d *Dedup, e *Event) (Verdict, string) {
	t.Helper()
	v, err := d.Check(e)
	if err != nil {
		return v, CodeOf(err)
	}
	if v == New {
		d.Add(e)
	}
	return v, ""
}

func TestDedup(t *testing.T) {
	d := NewDedup(DedupConfig{Horizon: time.Hour, MaxRanges: 3, RecentIDs: 4})
	base := now.UnixMilli()
	// Batch 2 (seq 100..199) arrives before batch 1 (0..99), then both again.
	for round, lo := range []uint64{100, 0, 100, 0} {
		want := New
		if round >= 2 {
			want = Duplicate
		}
		for s := lo; s < lo+100; s++ {
			verdict, code := observe(t, d, ev("d1", s, base+int64(s)*1000, 0))
			if verdict != want || code != "" {
				t.Fatalf("round %d seq %d: %v %q, want %v", round, s, verdict, code, want)
			}
		}
	}
	w := d.Window("v")
	if len(w.Devices) != 1 || len(w.Devices[0].Ranges) != 1 || w.Devices[0].Ranges[0] != (SeqRange{0, 199, base, base + 199000}) {
		t.Fatalf("ranges did not merge: %+v", w.Devices[0].Ranges)
	}
	// Every repeat is a duplicate, every new one new.
	if v, _ := observe(t, d, ev("d1", 150, base+150000, 0)); v != Duplicate {
		t.Fatal("repeat not detected")
	}
	if v, _ := observe(t, d, ev("d2", 150, base+150000, 0)); v != New {
		t.Fatal("another device's event taken for a repeat")
	}
	// A box reset: seq starts again at 0, at a later time: new.
	if v, _ := observe(t, d, ev("d1", 0, base+500000, 0)); v != New {
		t.Fatal("reset box's event taken for a repeat")
	}
	// Same event id under a new seq: duplicate (recent-id ring).
	e := ev("d1", 1000, base+600000, 0)
	observe(t, d, e)
	e2 := *e
	e2.Seq, e2.TimeMs = 2000, base+700000
	if v, _ := observe(t, d, &e2); v != Duplicate {
		t.Fatal("re-sent event id not detected")
	}
	// Horizon: an event far newer prunes old ranges; the old area becomes refusable.
	observe(t, d, ev("d1", 5000, base+3*3600_000, 0))
	if _, code := observe(t, d, ev("d1", 300, base+300000, 0)); code != CodeBeyondDedup {
		t.Fatalf("event behind the floor: code %q", code)
	}
	if got := len(d.Window("v").device("d1").Ranges); got > 3 {
		t.Fatalf("ranges not bounded: %d", got)
	}
}

func TestDedupOdometer(t *testing.T) {
	d := NewDedup(DedupConfig{})
	base := now.UnixMilli()
	for _, tc := range []struct {
		seq  uint64
		t    int64
		odo  float64
		code string
	}{
		{1, base, 100, ""},
		{2, base + 1000, 100.5, ""},
		{3, base + 2000, 100.4, CodeOdometerDecreased}, // later but less
		{4, base + 500, 100.2, ""},                     // earlier, in between: fine
		{5, base + 600, 101, CodeOdometerDecreased},    // earlier but more than the newest
		{6, base + 3000, 0, ""},                        // 0: not reported
		{7, base + 4000, 100.5, ""},
	} {
		_, code := observe(t, d, ev("d", tc.seq, tc.t, tc.odo))
		if code != tc.code {
			t.Errorf("seq %d: code %q, want %q", tc.seq, code, tc.code)
		}
	}
}

func TestDedupSnapshot(t *testing.T) {
	d := NewDedup(DedupConfig{})
	base := now.UnixMilli()
	for s := uint64(0); s < 50; s += 2 {
		observe(t, d, ev("d1", s, base+int64(s), 10+float64(s)))
		observe(t, d, ev("d2", s+1, base+int64(s), 0))
	}
	b, ok := d.Snapshot(nil, "v")
	if !ok {
		t.Fatal("no snapshot")
	}
	d2 := NewDedup(DedupConfig{})
	if err := d2.Restore("v", b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(d.Window("v"), d2.Window("v")) {
		t.Fatalf("restore differs:\n%+v\n%+v", d.Window("v"), d2.Window("v"))
	}
	if v, _ := observe(t, d2, ev("d1", 10, base+10, 20)); v != Duplicate {
		t.Fatal("restored state forgot an event")
	}
	if got := d2.Evict(base + 1_000_000); len(got) != 1 || d2.Len() != 0 {
		t.Fatalf("evict: %v", got)
	}
	for _, bad := range [][]byte{nil, {2}, {1}, b[:len(b)-1], append(append([]byte{}, b...), 0)} {
		if err := d2.Restore("x", bad); err == nil {
			t.Errorf("corrupt snapshot %x accepted", bad)
		}
	}
}
