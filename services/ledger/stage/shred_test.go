package stage

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/pseudonym"
	"github.com/minecart/minecart/services/shred"
)

// followed is the pseudonyms topic as a follower has read it.
type followed struct{ dir *pseudonym.Directory }

func (f followed) Directory() *pseudonym.Directory { return f.dir }
func (followed) CatchUp(context.Context) error     { return nil }
func (followed) Sync(context.Context) error        { return nil }

// TestSealedScores: scores sealed by scoring's writer (docs/privacy.md)
// make the same book as the same scores in clear, under the pseudonyms
// scoring made (the ledger makes no second key); a sealed score whose
// vehicle's key is destroyed is skipped and counted, never an error or a
// dead letter; a sealed score that does not open is dead-lettered.
func TestSealedScores(t *testing.T) {
	ctx := context.Background()
	seal, _ := pseudonym.GenerateSealKey()
	serde := schemas.SingleObject()
	src := pseudonym.Derived("shred-test")
	run := func(sealed bool) (root string, ledgerKeys int, p *Processor, topic followed, send func(pipelines.Record) error) {
		m := &memLog{changelog: map[string][]byte{}}
		topic = followed{pseudonym.NewDirectory()}
		cfg := Config{Key: ledgertest.Key(1), MaxBlockEntries: 2, Serde: serde, Blocks: ledgertest.Blocks(m.blocks), Logger: kafkatest.Logger(),
			Pseudonyms: &Pseudonyms{Seal: seal, Keys: src, Load: func(context.Context) (*pseudonym.Directory, error) { return pseudonym.NewDirectory(), nil }, Follow: topic}}
		p, err := NewProcessor(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		w := shred.NewWriter(&shred.Keyring{Keys: topic, Source: src, Seal: seal})
		send = func(rec pipelines.Record) error {
			var out collect
			if err := p.Process(ctx, rec, &out); err != nil {
				return err
			}
			if err := p.Flush(ctx, &out); err != nil {
				t.Fatal(err)
			}
			for _, r := range out.recs {
				if r.Topic == pipelines.TopicLedgerPseudonyms && r.Value != nil {
					ledgerKeys++
				}
			}
			m.take(t, &out)
			return nil
		}
		for _, s := range []*avro.DailyScore{ledgertest.Score("veh-a", 1, 10), ledgertest.Score("veh-b", 1, 20)} {
			rec := pipelines.Record{Topic: pipelines.TopicScores, Key: []byte(s.VehicleID), Value: enc(t, s)}
			if sealed {
				env, newKey, err := w.Seal(ctx, pipelines.TopicScores, pseudonym.Vehicle, s.VehicleID, rec.Value)
				if err != nil || newKey == nil {
					t.Fatalf("seal: %v %v", newKey, err)
				}
				o, err := seal.OpenRecord(newKey.Pseudonym, newKey)
				if err != nil {
					t.Fatal(err)
				}
				topic.dir.Put(o) // scoring's transaction committed, the follower read it
				rec = pipelines.Record{Topic: pipelines.TopicScores, Key: []byte(env.Pseudonym), Value: enc(t, env)}
			}
			if err := send(rec); err != nil {
				t.Fatal(err)
			}
		}
		if err := send(pipelines.Record{Topic: pipelines.TopicScores, Key: []byte("wm/0"), Value: enc(t, ledgertest.Watermark(0, 1, 2*ledgertest.DayMs))}); err != nil {
			t.Fatal(err)
		}
		if p.book.Size() != 2 {
			t.Fatalf("sealed %v: %d entries", sealed, p.book.Size())
		}
		return p.book.Head().Root.String(), ledgerKeys, p, topic, send
	}
	clearRoot, clearKeys, _, _, _ := run(false)
	root, keys, p, topic, send := run(true)
	if root != clearRoot || clearKeys != 2 || keys != 0 {
		t.Fatalf("sealed: root %s, %d keys made by the ledger; clear: root %s, %d keys", root, keys, clearRoot, clearKeys)
	}

	// veh-a is erased (its key tombstoned): a replayed sealed score of it is skipped.
	w := shred.NewWriter(&shred.Keyring{Keys: topic, Source: src, Seal: seal})
	inner := enc(t, ledgertest.Score("veh-a", 2, 30))
	env, _, err := w.Seal(ctx, pipelines.TopicScores, pseudonym.Vehicle, "veh-a", inner)
	if err != nil {
		t.Fatal(err)
	}
	topic.dir.Delete(env.Pseudonym)
	before := p.book.Size()
	if err := send(pipelines.Record{Topic: pipelines.TopicScores, Key: []byte(env.Pseudonym), Value: enc(t, env)}); err != nil {
		t.Fatalf("a shredded score: %v", err)
	}
	if got := testutil.ToFloat64(p.m.shredded); got != 1 || len(p.pending) != 0 || p.book.Size() != before {
		t.Fatalf("a shredded score: counted %v, %d pending", got, len(p.pending))
	}
	// A sealed score that does not open (a flipped byte) is a dead letter.
	b, _, err := w.Seal(ctx, pipelines.TopicScores, pseudonym.Vehicle, "veh-b", enc(t, ledgertest.Score("veh-b", 2, 30)))
	if err != nil {
		t.Fatal(err)
	}
	b.Sealed[len(b.Sealed)-1] ^= 1
	err = send(pipelines.Record{Topic: pipelines.TopicScores, Key: []byte(b.Pseudonym), Value: enc(t, b)})
	if code, ok := pipelines.RejectCode(err); !ok || code != "sealed" || !errors.Is(err, shred.ErrBad) {
		t.Fatalf("a sealed score that does not open: %v", err)
	}
}
