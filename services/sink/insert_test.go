package sink

import (
	"bytes"
	"reflect"
	"slices"
	"testing"

	"github.com/twmb/franz-go/pkg/sr/srfake"

	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/telemetry"
)

func TestPlainType(t *testing.T) {
	for in, want := range map[string]string{
		"String":                              "String",
		"LowCardinality(String)":              "String",
		"Array(LowCardinality(String))":       "Array(String)",
		"LowCardinality(Nullable(String))":    "Nullable(String)",
		"Map(LowCardinality(String), UInt64)": "Map(String, UInt64)",
		"Tuple(LowCardinality(String), LowCardinality(FixedString(2)))": "Tuple(String, FixedString(2))",
		"DateTime64(3, 'UTC')":  "DateTime64(3, 'UTC')",
		"LowCardinality(String": "LowCardinality(String", // unbalanced: left alone
	} {
		if got := plainType(in); got != want {
			t.Errorf("plainType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseInsert(t *testing.T) {
	for _, insert := range []string{telemetryInsert, scoresInsert, ledgerInsert, redemptionsInsert} {
		table, cols, err := parseInsert(insert)
		if err != nil || table == "" || len(cols) < 10 || slices.Contains(cols, "") {
			t.Errorf("%.30q: %q %q %v", insert, table, cols, err)
		}
		if cols[len(cols)-1] != "src_offset" {
			t.Errorf("%s: last column %q", table, cols[len(cols)-1])
		}
	}
	if _, cols, _ := parseInsert(telemetryInsert); len(cols) != len((&telemetryRows{}).columns()) {
		t.Errorf("telemetry: %d columns in the insert, %d in telemetryRows", len(cols), len((&telemetryRows{}).columns()))
	}
	for _, bad := range []string{"SELECT 1", "INSERT INTO t VALUES (1)x", "INSERT INTO t"} {
		if _, _, err := parseInsert(bad); err == nil {
			t.Errorf("parseInsert(%q) accepted", bad)
		}
	}
}

// TestDecodeEventFramings: events framed by either serde (single-object,
// Confluent with a registry) take telemetry's decoder and decode as the
// serde does; a value in the other framing still decodes, through the serde.
func TestDecodeEventFramings(t *testing.T) {
	reg := srfake.New()
	defer reg.Close()
	confluent, err := schemas.NewSerde(t.Context(), schemas.SerdeConfig{RegistryURL: reg.URL()})
	if err != nil {
		t.Fatal(err)
	}
	ev := telemetry.Event{EventID: "e-1", DeviceID: "d-1", VehicleID: "v-1", Seq: 3, TimeMs: 1_763_000_000_000, TZ: "UTC",
		Lat: 52.5, Lon: 13.4, HDOP: 0.8, SpeedKmh: 50, OdometerKm: 12.5, EngineOn: true, FaultCodes: []string{"P0301"}}
	for name, s := range map[string]*schemas.Serde{"single-object": schemas.SingleObject(), "confluent": confluent} {
		header, err := eventHeader(s)
		if err != nil {
			t.Fatal(name, err)
		}
		b, err := s.Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
		if err != nil {
			t.Fatal(name, err)
		}
		if !bytes.HasPrefix(b, header) {
			t.Fatalf("%s: %x does not start with header %x", name, b, header)
		}
		fast, err := decodeEvent(s, header, b)
		if err != nil {
			t.Fatal(name, err)
		}
		slow, err := decodeEvent(s, nil, b) // the serde's path
		if err != nil {
			t.Fatal(name, err)
		}
		if !reflect.DeepEqual(fast, slow) || fast.VehicleID != "v-1" || fast.FaultCodes[0] != "P0301" {
			t.Errorf("%s: fast %+v, serde %+v", name, fast, slow)
		}
	}
	// A single-object value reaching a Confluent writer: the serde decodes it.
	header, _ := eventHeader(confluent)
	b, _ := schemas.SingleObject().Encode(schemas.TelemetryEvent, telemetry.ToNative(&ev))
	if got, err := decodeEvent(confluent, header, b); err != nil || got.EventID != "e-1" {
		t.Errorf("single-object through the confluent serde: %+v %v", got, err)
	}
	if _, err := decodeEvent(confluent, header, append(slices.Clone(header), 0xFF)); err == nil {
		t.Error("truncated body accepted")
	}
}
