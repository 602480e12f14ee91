package stage

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/scoring/scoringtest"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/telemetry"
)

// memKeys is the pseudonyms topic as the stage's follower has read it.
type memKeys struct {
	dir      *pseudonym.Directory
	catchUps int
}

func (k *memKeys) Directory() *pseudonym.Directory { return k.dir }
func (k *memKeys) CatchUp(context.Context) error   { k.catchUps++; return nil }
func (k *memKeys) Sync(context.Context) error {
	panic("the scoring stage must never wait for the pseudonyms topic")
}

// TestSealedScores: with Config.Shred every score leaves sealed under its
// vehicle's key, keyed by the vehicle's pseudonym, with the key's record
// on the pseudonyms topic (partition 0) in the same flush the first time
// only; the watermark stays in clear; the sealed score opens to the score
// the stage writes without Shred, byte for byte.
func TestSealedScores(t *testing.T) {
	serde := schemas.SingleObject()
	ctx := context.Background()
	seal, _ := pseudonym.GenerateSealKey()
	keys := &memKeys{dir: pseudonym.NewDirectory()}
	day := time.Date(2026, 11, 24, 0, 0, 0, 0, shanghai)
	rec := func(ev *telemetry.Event) pipelines.Record {
		b, err := serde.Encode(schemas.TelemetryEvent, telemetry.ToNative(ev))
		if err != nil {
			t.Fatal(err)
		}
		return pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 3, Key: []byte(ev.VehicleID), Value: b,
			Timestamp: time.UnixMilli(ev.TimeMs).Add(time.Second)}
	}
	drive := func(ring *shred.Keyring, days int) emitted {
		st, err := NewStage(Config{Serde: serde, Now: func() time.Time { return day }, IdleTimeout: 5 * time.Minute, Lateness: -1, Shred: ring})
		if err != nil {
			t.Fatal(err)
		}
		pr, err := st.NewProcessor(ctx, pipelines.Task{Stage: st.Name, Partition: 3})
		if err != nil {
			t.Fatal(err)
		}
		var out emitted
		for d := range days + 1 {
			for i, h := range []time.Duration{9 * time.Hour, 9*time.Hour + time.Second} {
				ev := scoringtest.Event("car", day.Add(time.Duration(d)*24*time.Hour+h))
				ev.EventID += string(rune('a'+i)) + string(rune('a'+d))
				if err := pr.Process(ctx, rec(ev), &out); err != nil {
					t.Fatal(err)
				}
			}
			if err := pr.(pipelines.Flusher).Flush(ctx, &out); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	clear := drive(nil, 2)
	ring := &shred.Keyring{Keys: keys, Seal: seal, Source: pseudonym.Derived("s")}
	out := drive(ring, 2)
	want := pseudonym.Of(pseudonym.Derived("s").NewKey(pseudonym.Vehicle, "car"), pseudonym.Vehicle, "car")

	newKeys := out.on(pipelines.TopicLedgerPseudonyms)
	if len(newKeys) != 1 || string(newKeys[0].Key) != want {
		t.Fatalf("%d key records (%v), want one for %s: the follower has not read it back, the writer keeps it", len(newKeys), newKeys, want)
	}
	var kr avro.Pseudonym
	if err := serde.Unmarshal(newKeys[0].Value, &kr); err != nil {
		t.Fatal(err)
	}
	o, err := seal.OpenRecord(want, &kr)
	if err != nil || o.ID != "car" {
		t.Fatalf("key record: %+v %v", o, err)
	}
	keys.dir.Put(o)
	rd := shred.Reader{Keys: keys, Serde: serde}
	cs, ss := clear.on(pipelines.TopicScores), out.on(pipelines.TopicScores)
	if len(cs) != len(ss) || len(ss) < 4 {
		t.Fatalf("%d records on scores sealed, %d in clear", len(ss), len(cs))
	}
	sealed := 0
	for i, r := range ss {
		if bytes.Contains(r.Value, []byte("car")) || string(r.Key) == "car" {
			t.Fatalf("record %d names the vehicle in clear", i)
		}
		if name, _ := serde.Name(r.Value); name == schemas.Watermark {
			if !bytes.Equal(r.Value, cs[i].Value) || !bytes.Equal(r.Key, cs[i].Key) {
				t.Fatalf("watermark %d differs", i)
			}
			continue
		}
		got, inner, isSealed, err := rd.Unseal(ctx, r.Topic, r.Key, r.Value)
		if err != nil || !isSealed || got.ID != "car" || string(r.Key) != want || !bytes.Equal(inner, cs[i].Value) {
			t.Fatalf("record %d: %v %v %q, want the clear score", i, isSealed, err, r.Key)
		}
		sealed++
	}
	if sealed != 2 || keys.catchUps == 0 {
		t.Fatalf("%d sealed scores, %d catch-ups", sealed, keys.catchUps)
	}
}
