package stage

import (
	"context"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// TestProcessorTransfers: transfer requests (kind 5) are appended in
// request order in wall-clock blocks, each id once; an expiry's block is
// stamped at or after its deadline (not_before_ms) even if the ledger's
// clock is behind; an invalid transfer is dead-lettered and changes
// nothing; the entries record carries the credit side.
func TestProcessorTransfers(t *testing.T) {
	ctx := context.Background()
	m := &memLog{changelog: map[string][]byte{}}
	p := newTestProcessor(t, m)
	const wall = 1_800_000_000_000
	p.cfg.Now = func() time.Time { return time.UnixMilli(wall) }
	var out collect
	const pid, tid = "000000000000000000000000000000a1", "000000000000000000000000000000a2"
	req := func(r avro.TransferRequest) error {
		return p.Process(ctx, pipelines.Record{Topic: pipelines.TopicLedgerRequests, Value: enc(t, &r)}, &out)
	}
	pending := avro.TransferRequest{RequestID: pid, DebitAccount: "alice", CreditAccount: "bob", Amount: 5,
		Flags: int64(ledger.TransferPending), TimeoutMs: 1000, RequestedAt: time.UnixMilli(wall)}
	single := avro.TransferRequest{RequestID: tid, DebitAccount: "bob", CreditAccount: "alice", Amount: 2, RequestedAt: time.UnixMilli(wall)}
	for _, r := range []avro.TransferRequest{pending, single, pending} { // the repeat is ignored
		if err := req(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}
	var counter string
	for _, r := range out.recs {
		if r.Topic == pipelines.TopicLedgerEntries {
			var e avro.LedgerEntry
			if err := schemas.SingleObject().Unmarshal(r.Value, &e); err != nil {
				t.Fatal(err)
			}
			if e.ID == tid {
				counter = string(e.Kind) + " " + e.Account + "->" + e.CounterAccount
				if e.Delta != -2 {
					t.Errorf("delta %d, want -2", e.Delta)
				}
			}
		}
	}
	if counter != "transfer bob->alice" {
		t.Errorf("entries record of %s: %q", tid, counter)
	}
	m.take(t, &out)
	if m.entries != 2 || len(m.blocks) != 1 || m.blocks[0].Header.TimestampMs != wall {
		t.Fatalf("%d entries, %d blocks; want 2 in 1 at %d", m.entries, len(m.blocks), wall)
	}
	// The expiry: the ledger's clock (wall) is before the deadline.
	expire := avro.TransferRequest{RequestID: ledger.ExpirePrefix + pid, DebitAccount: "alice", CreditAccount: "bob", Amount: 5,
		Flags: int64(ledger.TransferExpirePending), PendingID: pid, NotBeforeMs: wall + 1000, RequestedAt: time.UnixMilli(wall + 1000)}
	if err := req(expire); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}
	m.take(t, &out)
	if len(m.blocks) != 2 || m.blocks[1].Header.TimestampMs != wall+1000 {
		t.Fatalf("expiry block stamped %d, want %d", m.blocks[1].Header.TimestampMs, wall+1000)
	}
	e, err := ledger.DecodeEntry(m.blocks[1].Entries[0])
	if err != nil || e.TransferFlags != ledger.TransferExpirePending || e.Ref != pid {
		t.Fatalf("expiry entry %+v, %v", e, err)
	}
	// Invalid: rejected, nothing appended.
	bad := single
	bad.RequestID, bad.CreditAccount = "000000000000000000000000000000a3", "bob"
	if code, ok := pipelines.RejectCode(req(bad)); !ok || code != "invalid_request" {
		t.Fatalf("transfer to itself: %q %v", code, ok)
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}
	m.take(t, &out)
	if len(m.blocks) != 2 {
		t.Fatalf("%d blocks after an invalid request, want 2", len(m.blocks))
	}
	// A restarted ledger knows the ids: a replayed request is ignored.
	p = newTestProcessor(t, m)
	p.cfg.Now = func() time.Time { return time.UnixMilli(wall + 5000) }
	if err := req(single); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx, &out); err != nil {
		t.Fatal(err)
	}
	m.take(t, &out)
	if len(m.blocks) != 2 {
		t.Fatalf("replay after a restart appended: %d blocks", len(m.blocks))
	}
}
