package sink

import (
	"context"
	"errors"
	"reflect"
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

// opening is id's pseudonym of kind k, its key derived from the seed "s".
func opening(k pseudonym.Kind, id string) pseudonym.Opening {
	key := pseudonym.Derived("s").NewKey(k, id)
	return pseudonym.Opening{Pseudonym: pseudonym.Of(key, k, id), Kind: k, ID: id, Key: key}
}

// sealed is inner sealed for o as a record of topic (docs/privacy.md),
// keyed by o's pseudonym, at offset.
func sealed(t *testing.T, serde *schemas.Serde, o pseudonym.Opening, topic string, inner []byte, offset int64) pipelines.Record {
	t.Helper()
	s, err := shred.Seal(o, topic, inner)
	if err != nil {
		t.Fatal(err)
	}
	v, err := serde.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	return pipelines.Record{Topic: topic, Key: []byte(o.Pseudonym), Value: v, Offset: offset}
}

// scoreOf is the framed DailyScore of VIN-1 on 2026-11-01.
func scoreOf(t *testing.T, serde *schemas.Serde) []byte {
	t.Helper()
	inner, err := serde.Marshal(&avro.DailyScore{ID: "VIN-1/2026-11-01", VehicleID: "VIN-1", DeviceID: "d", Date: "2026-11-01", TZ: "UTC",
		WindowStart: time.UnixMilli(0).UTC(), WindowEnd: time.UnixMilli(86400000).UTC(), Points: 7, Flags: []string{}, FlagReasons: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	return inner
}

// TestSealedScoreRows: a sealed score (docs/privacy.md) becomes the row
// of its inner score, with the vehicle id in clear; once the vehicle's
// key is destroyed the same record gives no row and no error (counted,
// never a dead letter); one that does not open is an error (dead
// letter); without keys a sealed score is an error too.
func TestSealedScoreRows(t *testing.T) {
	ctx := context.Background()
	serde := schemas.SingleObject()
	keys := dirKeys{pseudonym.NewDirectory()}
	o := opening(pseudonym.Vehicle, "VIN-1")
	keys.d.Put(o)
	w, err := newWriter(Config{Serde: serde, Pseudonyms: keys}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	rec := sealed(t, serde, o, pipelines.TopicScores, scoreOf(t, serde), 5)
	r, err := w.scoreRow(ctx, &rec)
	if err != nil || len(r) < 3 || r[1] != "VIN-1" || r[2] != "VIN-1/2026-11-01" {
		t.Fatalf("sealed score row %v: %v", r, err)
	}
	bad := rec
	bad.Value = append([]byte(nil), rec.Value...)
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
	w, err := newWriter(Config{Serde: serde, Pseudonyms: keys}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	ev, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(&telemetry.Event{EventID: "d-1", DeviceID: "d", VehicleID: "VIN-1",
		TimeMs: 1_000, TZ: "UTC", Lat: 31.2, Lon: 121.5, SpeedKmh: 30, Seq: 1}))
	if err != nil {
		t.Fatal(err)
	}
	recs := []pipelines.Record{
		sealed(t, serde, opening(pseudonym.Vehicle, "VIN-1"), pipelines.TopicScores, scoreOf(t, serde), 1),
		{Topic: pipelines.TopicTelemetryClean, Key: []byte("VIN-1"), Value: ev, Offset: 2},
	}
	b := w.prepare(ctx, recs, storedSet{})
	var te transientError
	if !errors.As(b.err, &te) || len(b.rejected) != 0 || len(b.scores) != 0 {
		t.Fatalf("batch err %v (transient %v), %d rejected, %d score rows: want the transient error, nothing rejected or stored",
			b.err, errors.As(b.err, &te), len(b.rejected), len(b.scores))
	}
}

// TestSealedRedemptionRows: a redemption status sealed for its owner's
// account (settlement's SealStatus) becomes the row of the clear status,
// owner in clear; the anonymous status of an account without a key is
// stored with an empty owner; once the account's key is destroyed the
// sealed one gives no row and no error (counted); a flipped byte is an
// error; a sealed score on the status topic does not open there (its
// additional data names another topic).
func TestSealedRedemptionRows(t *testing.T) {
	ctx := context.Background()
	serde := schemas.SingleObject()
	keys := dirKeys{pseudonym.NewDirectory()}
	o := opening(pseudonym.Account, "owner-1")
	keys.d.Put(o)
	w, err := newWriter(Config{Serde: serde, Pseudonyms: keys}.withDefaults())
	if err != nil {
		t.Fatal(err)
	}
	red := &avro.Redemption{RedemptionID: "r1", IdempotencyKey: "k1", Owner: "owner-1", Partner: "acme", ItemID: "coffee", Quantity: 1,
		Points: 30, Status: avro.RedemptionStatusPending, Seq: 1, RequestedMs: time.UnixMilli(1000).UTC(), UpdatedMs: time.UnixMilli(2000).UTC()}
	inner, err := serde.Marshal(red)
	if err != nil {
		t.Fatal(err)
	}
	seal := func(topic string) pipelines.Record { // sealed for topic, read on the status topic
		r := sealed(t, serde, o, topic, inner, 3)
		r.Topic = pipelines.TopicRedemptionStatus
		return r
	}
	rec := seal(pipelines.TopicRedemptionStatus)
	clear := pipelines.Record{Topic: pipelines.TopicRedemptionStatus, Key: []byte("r1"), Value: inner, Offset: 3}
	want, err := w.redemptionRow(ctx, &clear)
	if err != nil || len(want) < 6 || want[0] != "r1" || want[5] != "owner-1" {
		t.Fatalf("clear status row %v: %v", want, err)
	}
	got, err := w.redemptionRow(ctx, &rec)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("sealed status row %v (%v), clear %v", got, err, want)
	}
	anon := *red
	anon.Owner, anon.Customer, anon.IdempotencyKey = "", "", ""
	av, err := serde.Marshal(&anon)
	if err != nil {
		t.Fatal(err)
	}
	arec := pipelines.Record{Topic: pipelines.TopicRedemptionStatus, Key: []byte("r1"), Value: av, Offset: 4}
	if r, err := w.redemptionRow(ctx, &arec); err != nil || r[5] != "" {
		t.Fatalf("anonymous status row %v: %v", r, err)
	}
	bad := rec
	bad.Value = append([]byte(nil), rec.Value...)
	bad.Value[len(bad.Value)-1] ^= 1
	if r, err := w.redemptionRow(ctx, &bad); !errors.Is(err, shred.ErrBad) || r != nil {
		t.Fatalf("a sealed status that does not open: %v %v", r, err)
	}
	moved := seal(pipelines.TopicScores) // sealed for another topic, written here
	if r, err := w.redemptionRow(ctx, &moved); !errors.Is(err, shred.ErrBad) || r != nil {
		t.Fatalf("a status sealed for another topic: %v %v", r, err)
	}
	keys.d.Delete(o.Pseudonym) // the erasure
	if r, err := w.redemptionRow(ctx, &rec); err != nil || r != nil || testutil.ToFloat64(w.m.shredded) != 1 {
		t.Fatalf("a shredded status: row %v, err %v, counted %v", r, err, testutil.ToFloat64(w.m.shredded))
	}
}
