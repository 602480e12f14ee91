package stage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/ledgertest"
)

// TestProcessorRescore: revisions of credited days become rescore entries
// linked to their credit's leaf, appended in canonical order once every
// watermark reached their release mark, across a restart; a day that
// arrived whole after its close is credited; a replayed revision appends
// nothing; a verifier rebuilding the book accepts it.
func TestProcessorRescore(t *testing.T) {
	ctx := context.Background()
	m := &memLog{changelog: map[string][]byte{}}
	p := newTestProcessor(t, m)
	var out collect
	send := func(value []byte) {
		t.Helper()
		err := p.Process(ctx, pipelines.Record{Topic: pipelines.TopicScores, Value: value}, &out)
		if err == nil {
			err = p.Flush(ctx, &out)
		}
		m.take(t, &out)
		if err != nil {
			t.Fatal(err)
		}
	}
	wm := func(through int64) {
		for task := range 2 {
			send(enc(t, ledgertest.Watermark(task, 2, through)))
		}
	}
	const quarter int64 = 15 * 60 * 1000
	rev := func(v string, pts int64, r int32, release int64, late int64) []byte {
		s := ledgertest.Score(v, 1, pts)
		s.Revision, s.ReleaseMs, s.LateAdded = r, release, late
		s.EventsHash = append([]byte{byte(r)}, s.EventsHash[1:]...)
		return enc(t, s)
	}
	send(enc(t, ledgertest.Score("a", 1, 100)))
	send(enc(t, ledgertest.Score("b", 1, 200)))
	wm(2 * ledgertest.DayMs)
	if m.entries != 2 {
		t.Fatalf("%d credits, want 2", m.entries)
	}
	r1 := 2*ledgertest.DayMs + 3*quarter
	send(rev("b", 150, 1, r1, 40))         // b taken down 50
	send(rev("a", 130, 1, r1, 10))         // a up 30
	send(rev("c", 70, 0, r1, 500))         // c's whole day came late: a credit
	send(rev("a", 120, 2, r1+quarter, 12)) // a again, a quarter later: down 10
	wm(r1 - quarter)
	if m.entries != 2 || p.Pending() != 4 {
		t.Fatalf("before the release mark: %d entries, %d pending", m.entries, p.Pending())
	}
	p = newTestProcessor(t, m) // restart: queue from the changelog, book from the blocks
	if p.Pending() != 4 {
		t.Fatalf("restored %d pending, want 4", p.Pending())
	}
	send(rev("a", 130, 1, r1, 10)) // re-delivered: queued once
	wm(r1)
	if m.entries != 5 || p.Pending() != 1 {
		t.Fatalf("at the release mark: %d entries, %d pending; want 5, 1", m.entries, p.Pending())
	}
	wm(r1 + quarter)
	send(rev("a", 130, 1, r1, 10)) // replayed after it was appended: nothing
	if m.entries != 6 || p.Pending() != 0 || len(m.changelog) != 2 {
		t.Fatalf("after: %d entries, %d pending, changelog %d keys (want 6, 0, 2 watermarks)", m.entries, p.Pending(), len(m.changelog))
	}
	var got []ledger.Entry
	for _, blk := range m.blocks {
		for _, raw := range blk.Entries {
			e, err := ledger.DecodeEntry(raw)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, e)
		}
	}
	want := []struct {
		kind        ledger.Kind
		id          string
		leaf        uint64
		points, dlt int64
	}{
		{ledger.KindCredit, "a/1970-01-02", 0, 100, 100},
		{ledger.KindCredit, "b/1970-01-02", 0, 200, 200},
		{ledger.KindRescore, "rescore/a/1970-01-02/1", 0, 130, 30},
		{ledger.KindRescore, "rescore/b/1970-01-02/1", 1, 150, -50},
		{ledger.KindCredit, "c/1970-01-02", 0, 70, 70},
		{ledger.KindRescore, "rescore/a/1970-01-02/2", 0, 120, -10},
	}
	for i, w := range want {
		e := got[i]
		if e.Kind != w.kind || e.ID != w.id || e.Points != w.points || e.Delta() != w.dlt || e.Kind == ledger.KindRescore && e.RefLeaf != w.leaf {
			t.Errorf("entry %d: %s %s points %d delta %d leaf %d; want %+v", i, e.Kind, e.ID, e.Points, e.Delta(), e.RefLeaf, w)
		}
	}
	if got[2].Reason == "" || got[2].Revision != 1 || got[2].Ref != "a/1970-01-02" || got[2].EventsHash[0] != 1 {
		t.Errorf("rescore entry %+v", got[2])
	}
	p = newTestProcessor(t, m) // the verifier's checks, rebuilding the book from its blocks
	for id, want := range map[string]int64{"a/1970-01-02": 120, "b/1970-01-02": 150, "c/1970-01-02": 70} {
		if pts, ok := p.Book().Credited(id); !ok || pts != want {
			t.Errorf("%s: %d points in the book, want %d", id, pts, want)
		}
	}
	// An invalid revision (released before its own window ends) is bad input.
	s := ledgertest.Score("d", 1, 1)
	s.Revision, s.ReleaseMs = 1, ledgertest.DayMs
	if err := p.Process(ctx, pipelines.Record{Topic: pipelines.TopicScores, Value: enc(t, s)}, &out); err == nil {
		t.Error("a revision released before its window end was accepted")
	}
}

// TestProcessorRescoreCrashAtEveryStep: scores, watermarks and revisions
// consumed two records per transaction; for every transaction index, a run
// that crashes there (its outputs and offsets lost), rebuilds (or resumes)
// and goes on ends with the uninterrupted run's head: every rescore
// appended exactly once, in the same blocks.
func TestProcessorRescoreCrashAtEveryStep(t *testing.T) {
	ctx := context.Background()
	const quarter int64 = 15 * 60 * 1000
	r1 := 2*ledgertest.DayMs + quarter
	var stream [][]byte
	wm := func(through int64) {
		for task := range 2 {
			stream = append(stream, enc(t, ledgertest.Watermark(task, 2, through)))
		}
	}
	rev := func(v string, pts int64, r int32, release int64) {
		s := ledgertest.Score(v, 1, pts)
		s.Revision, s.ReleaseMs, s.LateAdded = r, release, 5
		stream = append(stream, enc(t, s))
	}
	for _, v := range []string{"a", "b", "c", "d"} {
		stream = append(stream, enc(t, ledgertest.Score(v, 1, 100)))
	}
	rev("b", 80, 1, r1) // before the day is credited: waits for its release
	wm(2 * ledgertest.DayMs)
	rev("a", 130, 1, r1)
	rev("e", 40, 0, r1)
	rev("a", 90, 2, r1+quarter)
	rev("a", 130, 1, r1) // re-delivered
	wm(r1)
	wm(r1 + quarter)
	run := func(crashAt int, resume bool) (ledger.Header, []string, int) {
		m := &memLog{changelog: map[string][]byte{}}
		cache := &bookCache{}
		var p *Processor
		mk := func() *Processor {
			if p != nil && resume {
				p.Close()
			}
			cfg := Config{Key: ledgertest.Key(1), Origin: "minecart.test/ledger", MaxBlockEntries: 2, Serde: schemas.SingleObject(),
				Blocks: ledgertest.Blocks(m.blocks), Logger: kafkatest.Logger()}
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
			hi := min(pos+2, len(stream))
			var err error
			for _, v := range stream[pos:hi] {
				if err = p.Process(ctx, pipelines.Record{Topic: pipelines.TopicScores, Value: v}, &out); err != nil {
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
				p = mk()
			} else {
				m.take(t, &out)
				pos = hi
			}
			if txn++; txn > 1000 {
				t.Fatal("no progress")
			}
		}
		signer, _ := ledger.NewSigner("minecart.test/ledger", ledgertest.Key(1))
		if _, err := ledger.Verify(ctx, ledgertest.Blocks(m.blocks), signer.Public()); err != nil {
			t.Fatalf("crash at %d: %v", crashAt, err)
		}
		var ids []string
		for _, blk := range m.blocks {
			for _, raw := range blk.Entries {
				e, _ := ledger.DecodeEntry(raw)
				ids = append(ids, fmt.Sprintf("%s%+d", e.ID, e.Delta()))
			}
		}
		return m.blocks[len(m.blocks)-1].Header, ids, txn
	}
	want, ids, txns := run(-1, false)
	if fmt.Sprint(ids) != "[a/1970-01-02+100 b/1970-01-02+100 c/1970-01-02+100 d/1970-01-02+100 "+
		"rescore/a/1970-01-02/1+30 rescore/b/1970-01-02/1-20 e/1970-01-02+40 rescore/a/1970-01-02/2-40]" {
		t.Fatalf("book %v", ids)
	}
	for k := 0; k < txns; k++ {
		for _, resume := range []bool{false, true} {
			if got, gids, _ := run(k, resume); got.Hash() != want.Hash() {
				t.Errorf("crash at transaction %d (resume %v): %v", k, resume, gids)
			}
		}
	}
	t.Logf("%d crash points, rebuilt or resumed: same head", txns)
}
