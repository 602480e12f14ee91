package sink

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/telemetry"
)

// dirKeys is a followed pseudonyms topic already read to its end.
type dirKeys struct{ d *pseudonym.Directory }

func (k dirKeys) Directory() *pseudonym.Directory { return k.d }
func (dirKeys) CatchUp(context.Context) error     { return nil }
func (dirKeys) Sync(context.Context) error        { return nil }

// TestSealedScoreRows: a sealed score (docs/privacy.md) becomes the row
// of its inner score, with the vehicle id in clear; once the vehicle's
// key is destroyed the same record gives no row and no error (counted,
// never a dead letter); one that does not open is an error (dead
// letter); without keys a sealed score is an error too.
func TestSealedScoreRows(t *testing.T) {
	ctx := context.Background()
	serde := schemas.SingleObject()
	keys := dirKeys{pseudonym.NewDirectory()}
	key := pseudonym.Derived("s").NewKey(pseudonym.Vehicle, "VIN-1")
	o := pseudonym.Opening{Pseudonym: pseudonym.Of(key, pseudonym.Vehicle, "VIN-1"), Kind: pseudonym.Vehicle, ID: "VIN-1", Key: key}
	keys.d.Put(o)
	w, err := newWriter(Config{Serde: serde, Pseudonyms: keys}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	inner, err := serde.Marshal(&avro.DailyScore{ID: "VIN-1/2026-11-01", VehicleID: "VIN-1", DeviceID: "d", Date: "2026-11-01", TZ: "UTC",
		WindowStart: time.UnixMilli(0).UTC(), WindowEnd: time.UnixMilli(86400000).UTC(), Points: 7, Flags: []string{}, FlagReasons: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := shred.Seal(o, pipelines.TopicScores, inner)
	if err != nil {
		t.Fatal(err)
	}
	v, err := serde.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	rec := pipelines.Record{Topic: pipelines.TopicScores, Key: []byte(o.Pseudonym), Value: v, Offset: 5}
	r, err := w.scoreRow(ctx, &rec)
	if err != nil || len(r) < 3 || r[1] != "VIN-1" || r[2] != "VIN-1/2026-11-01" {
		t.Fatalf("sealed score row %v: %v", r, err)
	}
	bad := rec
	bad.Value = append([]byte(nil), v...)
	bad.Value[len(bad.Value)-1] ^= 1
	if r, err := w.scoreRow(ctx, &bad); !errors.Is(err, shred.ErrBad) || r != nil {
		t.Fatalf("a sealed score that does not open: %v %v", r, err)
	}
	keys.d.Delete(o.Pseudonym) // the erasure
	if r, err := w.scoreRow(ctx, &rec); err != nil || r != nil || testutil.ToFloat64(w.m.shredded) != 1 {
		t.Fatalf("a shredded score: row %v, err %v, counted %v", r, err, testutil.ToFloat64(w.m.shredded))
	}
	none, err := newWriter(Config{Serde: serde}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := none.scoreRow(ctx, &rec); err == nil {
		t.Fatal("a sealed score without keys gave a row")
	}
}

// failingKeys is a pseudonyms topic that cannot be read.
type failingKeys struct{ dirKeys }

func (failingKeys) CatchUp(context.Context) error { return errors.New("broker down") }

// TestPrepareKeepsTransientError: a sealed score whose key cannot be read
// yet fails its whole batch (retried), also when telemetry rows are in
// the same batch: the score is neither stored nor dead-lettered, so
// nothing is lost.
func TestPrepareKeepsTransientError(t *testing.T) {
	ctx := context.Background()
	serde := schemas.SingleObject()
	keys := failingKeys{dirKeys{pseudonym.NewDirectory()}}
	key := pseudonym.Derived("s").NewKey(pseudonym.Vehicle, "VIN-1")
	o := pseudonym.Opening{Pseudonym: pseudonym.Of(key, pseudonym.Vehicle, "VIN-1"), Kind: pseudonym.Vehicle, ID: "VIN-1", Key: key}
	w, err := newWriter(Config{Serde: serde, Pseudonyms: keys}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	inner, err := serde.Marshal(&avro.DailyScore{ID: "VIN-1/2026-11-01", VehicleID: "VIN-1", DeviceID: "d", Date: "2026-11-01", TZ: "UTC",
		WindowStart: time.UnixMilli(0).UTC(), WindowEnd: time.UnixMilli(86400000).UTC(), Flags: []string{}, FlagReasons: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := shred.Seal(o, pipelines.TopicScores, inner)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := serde.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&telemetry.Event{EventID: "d-1", DeviceID: "d", VehicleID: "VIN-1",
		TimeMs: 1_000, TZ: "UTC", Lat: 31.2, Lon: 121.5, SpeedKmh: 30, Seq: 1}))
	if err != nil {
		t.Fatal(err)
	}
	recs := []pipelines.Record{
		{Topic: pipelines.TopicScores, Key: []byte(o.Pseudonym), Value: sealed, Offset: 1},
		{Topic: pipelines.TopicTelemetryClean, Key: []byte("VIN-1"), Value: ev, Offset: 2},
	}
	b := w.prepare(ctx, recs, storedSet{})
	var te transientError
	if !errors.As(b.err, &te) || len(b.rejected) != 0 || len(b.scores) != 0 {
		t.Fatalf("batch err %v (transient %v), %d rejected, %d score rows: want the transient error, nothing rejected or stored",
			b.err, errors.As(b.err, &te), len(b.rejected), len(b.scores))
	}
}
