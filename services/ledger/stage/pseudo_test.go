package stage

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/pseudonym"
)

// TestChokePoint drives the processor with pseudonyms on: every leaf names
// vehicles and accounts only by pseudonym, the keys go to the pseudonyms
// topic in the same flush as the entries (partition 0), a restarted
// processor that loads them treats a re-sent score as a duplicate, an
// adjustment's ref by clear credit id finds the credit, and an erasure
// entry tombstones the key (topic and memory) and names only the pseudonym.
func TestChokePoint(t *testing.T) {
	ctx := context.Background()
	seal, _ := pseudonym.GenerateSealKey()
	serde := schemas.SingleObject()
	m := &memLog{changelog: map[string][]byte{}}
	topic := map[string][]byte{} // the pseudonyms topic, compacted
	load := func(context.Context) (*pseudonym.Directory, error) {
		d := pseudonym.NewDirectory()
		for k, v := range topic {
			var r avro.Pseudonym
			if err := serde.Unmarshal(v, &r); err != nil {
				return nil, err
			}
			o, err := seal.OpenRecord(k, &r)
			if err != nil {
				return nil, err
			}
			d.Put(o)
		}
		return d, nil
	}
	newProc := func() *Processor {
		cfg := Config{Key: ledgertest.Key(1), MaxBlockEntries: 2, Serde: serde, Blocks: ledgertest.Blocks(m.blocks),
			Logger: kafkatest.Logger(), Pseudonyms: &Pseudonyms{Seal: seal, Load: load}}
		p, err := NewProcessor(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := newProc()
	var out collect
	send := func(p *Processor, tp string, r schemas.Record) {
		t.Helper()
		if err := p.Process(ctx, pipelines.Record{Topic: tp, Value: enc(t, r)}, &out); err != nil {
			t.Fatal(err)
		}
		if err := p.Flush(ctx, &out); err != nil {
			t.Fatal(err)
		}
		for _, r := range out.recs {
			if r.Topic == pipelines.TopicLedgerPseudonyms {
				if r.Partition != 0 {
					t.Fatal("pseudonym record not on partition 0")
				}
				if r.Value == nil {
					delete(topic, string(r.Key))
				} else {
					topic[string(r.Key)] = r.Value
				}
			}
			if r.Topic == pipelines.TopicLedgerEntries || r.Topic == pipelines.TopicLedgerBlocks {
				for _, clear := range []string{"veh-a/", "veh-b/", "owner-1"} {
					if bytes.Contains(r.Value, []byte(clear)) || bytes.Contains(r.Key, []byte(clear)) {
						t.Fatalf("%s record names %q in clear", r.Topic, clear)
					}
				}
			}
		}
		m.take(t, &out)
	}
	send(p, pipelines.TopicScores, ledgertest.Score("veh-a", 1, 10))
	send(p, pipelines.TopicScores, ledgertest.Score("veh-b", 1, 20))
	send(p, pipelines.TopicScores, ledgertest.Watermark(0, 1, 2*ledgertest.DayMs))
	if m.entries != 2 || len(topic) != 2 {
		t.Fatalf("%d entries, %d keys; want 2, 2", m.entries, len(topic))
	}
	// A restart loads the keys: the same score is a duplicate.
	p = newProc()
	send(p, pipelines.TopicScores, ledgertest.Score("veh-a", 1, 10))
	if m.entries != 2 {
		t.Fatalf("re-sent score appended again: %d entries", m.entries)
	}
	// A debit of an account, an adjustment by clear ref.
	now := time.UnixMilli(5 * ledgertest.DayMs).UTC()
	send(p, pipelines.TopicLedgerRequests, &avro.DebitRequest{RequestID: "r-1", Kind: avro.RequestKindDebit, Account: "owner-1", Amount: 5, Reason: "redemption", RequestedAt: now})
	send(p, pipelines.TopicLedgerRequests, &avro.DebitRequest{RequestID: "fix-1", Kind: avro.RequestKindAdjustment, VehicleID: "veh-a", Ref: "veh-a/1970-01-02", Amount: 3, Reason: "goodwill for veh-a", RequestedAt: now})
	if m.entries != 4 || len(topic) != 3 {
		t.Fatalf("%d entries, %d keys; want 4, 3", m.entries, len(topic))
	}
	// Erase the owner: the account's erasure is an entry; its vehicle's
	// destroys the key and appends nothing, so no entry links the two.
	acct, _ := p.names.Lookup(pseudonym.Account, "owner-1")
	send(p, pipelines.TopicLedgerRequests, &avro.DebitRequest{RequestID: "erasure/00", Kind: avro.RequestKindErasure, Account: "owner-1", Reason: "owner asked", RequestedAt: now})
	send(p, pipelines.TopicLedgerRequests, &avro.DebitRequest{RequestID: "erasure/01", Kind: avro.RequestKindErasure, VehicleID: "veh-a", Reason: "owner asked", RequestedAt: now})
	if m.entries != 5 || len(topic) != 1 {
		t.Fatalf("after erasure: %d entries, %d keys; want 5, 1", m.entries, len(topic))
	}
	if _, ok := p.names.Lookup(pseudonym.Vehicle, "veh-a"); ok {
		t.Fatal("the ledger kept the erased key")
	}
	if _, ok := topic[acct.Pseudonym]; ok || acct.Pseudonym == "" {
		t.Fatalf("the account's key %q is still on the topic", acct.Pseudonym)
	}
	// Read again (a redelivery): no key, nothing to do.
	send(p, pipelines.TopicLedgerRequests, &avro.DebitRequest{RequestID: "erasure/01", Kind: avro.RequestKindErasure, VehicleID: "veh-a", Reason: "owner asked", RequestedAt: now})
	if m.entries != 5 || len(topic) != 1 {
		t.Fatalf("erasure read twice: %d entries, %d keys; want 5, 1", m.entries, len(topic))
	}
	var all []ledger.Entry
	for _, b := range m.blocks {
		for _, raw := range b.Entries {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range e.Identities() {
				if !pseudonym.Is(id) {
					t.Fatalf("leaf %+v names %q", e, id)
				}
			}
			all = append(all, e)
		}
	}
	credit, adj, er := all[0], all[3], all[4]
	if credit.VehicleID != adj.VehicleID || adj.Ref != credit.ID {
		t.Fatalf("credit %+v, adjustment %+v: want one pseudonym throughout", credit, adj)
	}
	if er.Kind != ledger.KindErasure || er.Account != acct.Pseudonym || er.VehicleID != "" {
		t.Fatalf("erasure %+v: want the account's pseudonym %s alone", er, acct.Pseudonym)
	}
	if adj.Reason != "goodwill for "+credit.VehicleID {
		t.Fatalf("reason %q keeps the vehicle id", adj.Reason)
	}
	// After erasure the same vehicle is a stranger: a new key, a new pseudonym.
	send(p, pipelines.TopicScores, ledgertest.Score("veh-a", 3, 7))
	send(p, pipelines.TopicScores, ledgertest.Watermark(0, 1, 4*ledgertest.DayMs))
	last, _ := ledger.DecodeEntry(m.blocks[len(m.blocks)-1].Entries[len(m.blocks[len(m.blocks)-1].Entries)-1])
	if last.Kind != ledger.KindCredit || last.VehicleID == credit.VehicleID || !pseudonym.Is(last.VehicleID) {
		t.Fatalf("credit after erasure %+v: want a fresh pseudonym", last)
	}
}
