package stage

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// memLog is an in-memory stand-in for the output topics of one processor
// run, used to drive the processor as plain code (the broker tests are in
// stage_test.go).
type memLog struct {
	blocks    []*ledger.Block
	entries   int
	changelog map[string][]byte
}

func (m *memLog) take(t *testing.T, out *collect) {
	t.Helper()
	for _, r := range out.recs {
		switch r.Topic {
		case pipelines.TopicLedgerBlocks:
			var rb avro.LedgerBlock
			if err := schemas.SingleObject().Unmarshal(r.Value, &rb); err != nil {
				t.Fatal(err)
			}
			blk, err := ledger.BlockFromAvro(&rb)
			if err != nil {
				t.Fatal(err)
			}
			m.blocks = append(m.blocks, &blk)
		case pipelines.TopicLedgerEntries:
			m.entries++
		case pipelines.TopicLedgerChangelog:
			if r.Value == nil {
				delete(m.changelog, string(r.Key))
			} else {
				m.changelog[string(r.Key)] = r.Value
			}
		}
	}
	out.recs = out.recs[:0]
}

func newTestProcessor(t *testing.T, m *memLog) *Processor {
	t.Helper()
	cfg := Config{Key: ledgertest.Key(1), Origin: "minecart.test/ledger", MaxBlockEntries: 2, Serde: schemas.SingleObject(), Blocks: ledgertest.Blocks(m.blocks), Logger: kafkatest.Logger()}
	p, err := NewProcessor(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range m.changelog {
		if err := p.Restore(context.Background(), pipelines.Record{Topic: pipelines.TopicLedgerChangelog, Key: []byte(k), Value: v}); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

func TestProcessorPendingLateAndRestart(t *testing.T) {
	ctx := context.Background()
	m := &memLog{changelog: map[string][]byte{}}
	p := newTestProcessor(t, m)
	var out collect
	send := func(p *Processor, topic string, value []byte) error {
		err := p.Process(ctx, pipelines.Record{Topic: topic, Value: value}, &out)
		if err == nil {
			err = p.Flush(ctx, &out)
		}
		m.take(t, &out)
		return err
	}
	score := func(v string, d int, pts int64) []byte {
		return enc(t, ledgertest.Score(v, d, pts))
	}
	wm := func(task int, through int64) []byte {
		return enc(t, ledgertest.Watermark(task, 2, through))
	}

	for _, v := range []string{"c", "a", "b"} {
		if err := send(p, pipelines.TopicScores, score(v, 1, 10)); err != nil {
			t.Fatal(err)
		}
	}
	if err := send(p, pipelines.TopicScores, wm(0, 2*ledgertest.DayMs)); err != nil {
		t.Fatal(err)
	}
	if len(m.blocks) != 0 || p.Pending() != 3 || len(m.changelog) != 4 {
		t.Fatalf("after one watermark: %d blocks, %d pending, %d changelog keys; want 0, 3, 4", len(m.blocks), p.Pending(), len(m.changelog))
	}
	// Crash: a new processor rebuilt from the (empty) blocks and the changelog.
	p = newTestProcessor(t, m)
	if p.Pending() != 3 {
		t.Fatalf("restored %d pending, want 3", p.Pending())
	}
	if err := send(p, pipelines.TopicScores, wm(1, 2*ledgertest.DayMs)); err != nil {
		t.Fatal(err)
	}
	if len(m.blocks) != 2 || m.entries != 3 || p.Pending() != 0 {
		t.Fatalf("after both watermarks: %d blocks, %d entries, %d pending; want 2, 3, 0", len(m.blocks), m.entries, p.Pending())
	}
	if _, ok := m.changelog["a/1970-01-02"]; ok {
		t.Error("released credit not tombstoned in the changelog")
	}
	first, _ := ledger.DecodeEntry(m.blocks[0].Entries[0])
	if first.VehicleID != "a" || m.blocks[0].Header.TimestampMs != 2*ledgertest.DayMs || m.blocks[0].Header.Clock != ledger.ClockEvent {
		t.Errorf("first block: vehicle %q ts %d; want a, %d (canonical order, window end)", first.VehicleID, m.blocks[0].Header.TimestampMs, 2*ledgertest.DayMs)
	}
	// Duplicate: nothing. Rescore with other points: a late-data adjustment.
	if err := send(p, pipelines.TopicScores, score("b", 1, 10)); err != nil || m.entries != 3 {
		t.Fatalf("duplicate score: %v, %d entries", err, m.entries)
	}
	if err := send(p, pipelines.TopicScores, score("b", 1, 14)); err != nil || m.entries != 4 {
		t.Fatalf("rescore: %v, %d entries", err, m.entries)
	}
	adj, _ := ledger.DecodeEntry(m.blocks[len(m.blocks)-1].Entries[0])
	if adj.Kind != ledger.KindAdjustment || adj.Amount != 4 || adj.Ref != "b/1970-01-02" {
		t.Errorf("late adjustment %+v", adj)
	}
	if pts, _ := p.Book().Credited("b/1970-01-02"); pts != 14 {
		t.Errorf("b credited %d, want 14", pts)
	}
	// A late score for a released day is credited at once.
	if err := send(p, pipelines.TopicScores, score("d", 1, 7)); err != nil || m.entries != 5 {
		t.Fatalf("late score: %v, %d entries", err, m.entries)
	}
	// Restart again: rebuilt from the blocks; a replay of everything adds nothing.
	p = newTestProcessor(t, m)
	before := p.Book().Tree().Root()
	for v, pts := range map[string]int64{"a": 10, "b": 14, "c": 10, "d": 7} {
		if err := send(p, pipelines.TopicScores, score(v, 1, pts)); err != nil {
			t.Fatal(err)
		}
	}
	if p.Book().Tree().Root() != before || m.entries != 5 {
		t.Errorf("replay changed the book: %d entries", m.entries)
	}
	if _, err := ledger.Verify(ctx, ledgertest.Blocks(m.blocks), ledgertest.Key(1).Public().(ed25519.PublicKey)); err != nil {
		t.Errorf("verify: %v", err)
	}
	// Bad input is rejected with a reason code.
	for _, c := range []struct {
		topic string
		value []byte
		code  string
	}{
		{pipelines.TopicScores, []byte("junk"), "decode"},
		{pipelines.TopicScores, enc(t, request(ledger.Entry{Kind: ledger.KindDebit, ID: "x", Account: "a", Amount: 1})), "unexpected_record"},
		{pipelines.TopicScores, enc(t, ledgertest.Watermark(3, 2, 0)), "invalid_watermark"},
		{pipelines.TopicLedgerRequests, enc(t, request(ledger.Entry{Kind: ledger.KindDebit, ID: "x", Account: "a", Amount: -1})), "invalid_request"},
	} {
		err := p.Process(ctx, pipelines.Record{Topic: c.topic, Value: c.value}, &out)
		if code, ok := pipelines.RejectCode(err); !ok || code != c.code {
			t.Errorf("%s: err %v, want reject %s", c.code, err, c.code)
		}
	}
}

// TestProcessorCrashAtEveryStep runs a score stream through the processor
// in transactions of a few records (and tick transactions that drain the
// queue), and for every transaction index k crashes once at k: that
// transaction's outputs are discarded, the processor is rebuilt from the
// committed blocks and changelog, and the transaction's records are
// consumed again. The new processor either rebuilds from the blocks or
// resumes the crashed one's book (undoing the lost blocks). Every run must
// end with the same head as the pure expected book.
func TestProcessorCrashAtEveryStep(t *testing.T) {
	const vehicles, days, perBlock = 10, 3, 2
	stream := scoreStream(t, vehicles, days, 5)
	signer, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
	want := expectedBook(t, signer, vehicles, days, perBlock).Head()
	ctx := context.Background()
	run := func(crashAt int, resume bool) (ledger.Header, int) {
		m := &memLog{changelog: map[string][]byte{}}
		cache := &bookCache{}
		var p *Processor
		mk := func() *Processor {
			if p != nil && resume {
				p.Close() // the book goes to the next processor, which undoes the lost transaction
			}
			cfg := Config{Key: ledgertest.Key(1), Origin: "minecart.test/ledger", MaxBlockEntries: perBlock, MaxReleaseEntries: 3,
				Serde: schemas.SingleObject(), Blocks: ledgertest.Blocks(m.blocks), Logger: kafkatest.Logger()}
			np, err := newProcessor(ctx, cfg, nil, cache)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range m.changelog {
				if err := np.Restore(ctx, pipelines.Record{Key: []byte(k), Value: v}); err != nil {
					t.Fatal(err)
				}
			}
			return np
		}
		p = mk()
		txn, pos := 0, 0
		for pos < len(stream) || p.Pending() > 0 {
			var out collect
			hi := min(pos+3, len(stream))
			var err error
			for _, r := range stream[pos:hi] {
				if err = p.Process(ctx, pipelines.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}, &out); err != nil {
					break
				}
			}
			if err == nil {
				if hi > pos {
					err = p.Flush(ctx, &out)
				} else {
					err = p.Tick(ctx, time.Time{}, &out)
				}
			}
			if err != nil {
				t.Fatalf("txn %d: %v", txn, err)
			}
			if txn == crashAt {
				p = mk() // crash: outputs and offsets of this transaction are lost
			} else {
				m.take(t, &out)
				pos = hi
			}
			txn++
			if txn > 10_000 {
				t.Fatal("no progress")
			}
		}
		if _, err := ledger.Verify(ctx, ledgertest.Blocks(m.blocks), signer.Public()); err != nil {
			t.Fatalf("crash at %d: %v", crashAt, err)
		}
		return m.blocks[len(m.blocks)-1].Header, txn
	}
	base, txns := run(-1, false)
	if base.Hash() != want.Hash() {
		t.Fatalf("uninterrupted head %d %s, want %d %s", base.TreeSize, base.Root, want.TreeSize, want.Root)
	}
	for k := 0; k < txns; k++ {
		for _, resume := range []bool{false, true} {
			if got, _ := run(k, resume); got.Hash() != want.Hash() {
				t.Errorf("crash at transaction %d (resume %v): head %d %s, want %d %s", k, resume, got.TreeSize, got.Root, want.TreeSize, want.Root)
			}
		}
	}
	t.Logf("%d crash points, rebuilt or resumed: same head", txns)
}

// failingSigner fails to sign once armed: what Book.Append calls after it
// has added a block's entries to the tree.
type failingSigner struct {
	ledger.BlockSigner
	armed *bool
}

func (s failingSigner) Sign(h *ledger.Header) ([]byte, string, error) {
	if *s.armed {
		return nil, "", errors.New("signer out of order")
	}
	return s.BlockSigner.Sign(h)
}

// TestProcessorAppendFailsAfterMutation: an Append that fails after it
// changed the book (a signing error) is no bad input: the record that
// caused it is not dead-lettered, nothing is emitted, the transaction
// fails, and the book is not handed to the next processor, which rebuilds
// from the published blocks and appends what the lost transaction held.
func TestProcessorAppendFailsAfterMutation(t *testing.T) {
	ctx := context.Background()
	m := &memLog{changelog: map[string][]byte{}}
	var out collect
	send := func(p *Processor, value []byte) error {
		err := p.Process(ctx, pipelines.Record{Topic: pipelines.TopicScores, Value: value}, &out)
		if err == nil {
			err = p.Flush(ctx, &out)
		}
		return err
	}
	p := newTestProcessor(t, m)
	for _, r := range [][]byte{enc(t, ledgertest.Score("a", 1, 10)), enc(t, ledgertest.Watermark(0, 1, 2*ledgertest.DayMs))} {
		if err := send(p, r); err != nil {
			t.Fatal(err)
		}
	}
	m.take(t, &out)
	if len(m.blocks) != 1 {
		t.Fatalf("%d blocks, want 1", len(m.blocks))
	}
	for _, c := range []struct {
		what    string
		value   []byte
		inFlush bool
	}{
		{"a rescore (appended by Process)", enc(t, ledgertest.Score("a", 1, 12)), false},
		{"a late credit (appended by Flush)", enc(t, ledgertest.Score("b", 1, 10)), true},
	} {
		armed := false
		p := newTestProcessor(t, m)
		p.signer = failingSigner{p.signer, &armed}
		cache := &bookCache{}
		p.cache = cache
		if c.inFlush {
			// b arrives after the watermark passed its day: late, appended by Flush.
			if err := p.Process(ctx, pipelines.Record{Topic: pipelines.TopicScores, Value: c.value}, &out); err != nil {
				t.Fatal(err)
			}
			armed = true
			err := p.Flush(ctx, &out)
			if _, rejected := pipelines.RejectCode(err); err == nil || rejected || !errors.Is(err, ledger.ErrUnusable) {
				t.Errorf("%s: flush %v, want a failed transaction (ledger.ErrUnusable), not a reject", c.what, err)
			}
		} else {
			armed = true
			err := p.Process(ctx, pipelines.Record{Topic: pipelines.TopicScores, Value: c.value}, &out)
			if _, rejected := pipelines.RejectCode(err); rejected {
				t.Fatalf("%s: rejected (%v): a valid record would be dead-lettered", c.what, err)
			}
			if err := p.Flush(ctx, &out); err == nil || !errors.Is(err, ledger.ErrUnusable) {
				t.Errorf("%s: flush %v, want a failed transaction (ledger.ErrUnusable)", c.what, err)
			}
		}
		for _, r := range out.recs {
			if r.Topic == pipelines.TopicLedgerBlocks || r.Topic == pipelines.TopicLedgerEntries {
				t.Errorf("%s: emitted to %s", c.what, r.Topic)
			}
		}
		out.recs = out.recs[:0] // the transaction aborts: its outputs are lost
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if b, _ := cache.take(); b != nil {
			t.Errorf("%s: the broken book was handed to the next processor", c.what)
		}
		// The next processor rebuilds from the published block and
		// appends the record again, on the published tree.
		p = newTestProcessor(t, m)
		if err := send(p, c.value); err != nil {
			t.Fatalf("%s: after the rebuild: %v", c.what, err)
		}
		m.take(t, &out)
		if _, err := ledger.Verify(ctx, ledgertest.Blocks(m.blocks), ledgertest.Key(1).Public().(ed25519.PublicKey)); err != nil || len(m.blocks) < 2 {
			t.Errorf("%s: %d blocks: %v", c.what, len(m.blocks), err)
		}
	}
}
