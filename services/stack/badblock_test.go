package stack

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// TestPoisonedBlocksTopic is the attack of issue 14: records produced to
// minecart.ledger.blocks of a running stack that do not extend its book (a
// duplicate, a forged block at the next height, an out-of-order block,
// garbage, a signed header with other entries, a fork). The stack keeps
// running and serving proofs; the genuine block the ledger writes after
// the forged one is served; the metric counts each reason, and each bad
// record has one dead letter. A restart on the same data directory starts,
// reports them again (metric, log) without a second dead letter, and
// serves proofs of old and new entries.
func TestPoisonedBlocksTopic(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	st := startStack(t, ctx, dir, "")
	defer func() { st.Close() }()
	pub := st.LedgerKey.Public().(ed25519.PublicKey)
	signer, err := ledger.NewSigner("minecart/ledger", st.LedgerKey)
	if err != nil {
		t.Fatal(err)
	}

	// A genuine block 0.
	adjust(t, ctx, st, "req-1")
	waitHead(t, ctx, st, 1)
	genuine := publishedBlocks(t, ctx, st)
	if len(genuine) != 1 {
		t.Fatalf("%d blocks, want 1", len(genuine))
	}
	b0 := genuine[0]

	// The poison: built on a copy of the published book.
	book := ledger.NewBook()
	if err := book.Apply(b0.Block, pub); err != nil {
		t.Fatal(err)
	}
	forger, _ := ledger.NewSigner("minecart/ledger", ledgertest.Key(66))
	mallory := ledger.Release{TimestampMs: 1_900_000_000_000, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindAdjustment, ID: "gift", Account: "mallory", VehicleID: "v9", Amount: 1_000_000, Reason: "bonus", RequestedAtMs: 1_900_000_000_000},
	}}
	ahead := ledger.NewBook()
	if err := ahead.Apply(b0.Block, pub); err != nil {
		t.Fatal(err)
	}
	forged, _, _, err := book.Append(mallory, 10, forger) // height 1, not signed by the key
	if err != nil {
		t.Fatal(err)
	}
	// Heights 1 and 2 signed by the key (as by a stolen key or a second
	// writer); only 2 is published: out of order.
	_, _, _, err = ahead.Append(ledger.Release{TimestampMs: 1_900_000_000_000, Clock: ledger.ClockWall, Entries: mallory.Entries[:1]}, 10, signer)
	if err != nil {
		t.Fatal(err)
	}
	later, _, _, err := ahead.Append(ledger.Release{TimestampMs: 1_900_000_000_001, Clock: ledger.ClockWall, Entries: []ledger.Entry{
		{Kind: ledger.KindAdjustment, ID: "gift-2", Account: "mallory", VehicleID: "v9", Amount: 1_000_000, Reason: "bonus", RequestedAtMs: 1_900_000_000_000},
	}}, 10, signer)
	if err != nil {
		t.Fatal(err)
	}
	otherEntries := *b0.Block
	raw, _ := (&ledger.Entry{Kind: ledger.KindAdjustment, ID: "req-1", Account: "mallory", VehicleID: "v1", Amount: 1_000_000, Reason: "bonus", RequestedAtMs: 1}).Encode()
	otherEntries.Entries = [][]byte{raw}
	fork := *b0.Block
	fork.Header.TimestampMs++
	if fork.Signature, fork.Checkpoint, err = signer.Sign(&fork.Header); err != nil {
		t.Fatal(err)
	}
	poison := []struct {
		reason ledger.Reason
		value  []byte
	}{
		{ledger.ReasonDuplicate, b0.Value},
		{ledger.ReasonForged, encBlock(t, st, forged[0])},
		{ledger.ReasonOutOfOrder, encBlock(t, st, later[0])},
		{ledger.ReasonUndecodable, []byte("\xc3\x01garbage, not a block")},
		{ledger.ReasonBadEntries, encBlock(t, st, &otherEntries)},
		{ledger.ReasonFork, encBlock(t, st, &fork)},
	}
	for _, p := range poison {
		if err := st.Producer.ProduceSync(ctx, pipelines.TopicLedgerBlocks, []byte("1"), p.value); err != nil {
			t.Fatal(err)
		}
	}
	// The ledger writes the genuine block 1 after the forged one.
	adjust(t, ctx, st, "req-2")
	waitHead(t, ctx, st, 2)
	select {
	case <-st.Failed():
		t.Fatalf("the stack stopped: %v", st.Err())
	default:
	}
	recs := publishedRecords(t, ctx, st)
	badAt := map[int64]ledger.Reason{}
	for i, p := range poison {
		badAt[recs[1+i].Offset] = p.reason
	}
	check := func(run string, reasons map[string]map[ledger.Reason]float64) {
		t.Helper()
		proveAll(t, ctx, st, pub, []string{"req-1", "req-2"})
		m := metrics(t, st)
		for reader, want := range reasons {
			for _, r := range ledger.Reasons {
				key := fmt.Sprintf(`%s{reader="%s",reason="%s"}`, ledger.BadBlocksMetric, reader, r)
				if m[key] != want[r] {
					t.Errorf("%s: %s = %v, want %v", run, key, m[key], want[r])
				}
			}
		}
		if h, _ := st.Ledger.Head(ctx); h.BadRecords != uint64(len(poison)) {
			t.Errorf("%s: head reports %d bad records, want %d", run, h.BadRecords, len(poison))
		}
		dls := deadLetters(t, ctx, st)
		if len(dls) != len(poison) {
			t.Errorf("%s: %d dead letters of bad blocks, want %d", run, len(dls), len(poison))
		}
		for _, dl := range dls {
			if want := badAt[dl.SourceOffset]; string(want) != dl.ReasonCode || dl.SourceTopic != pipelines.TopicLedgerBlocks {
				t.Errorf("%s: dead letter offset %d %s, want %q", run, dl.SourceOffset, dl.ReasonCode, want)
			}
		}
	}
	each := map[ledger.Reason]float64{}
	for _, p := range poison {
		each[p.reason]++
	}
	check("running", map[string]map[ledger.Reason]float64{proofs.ReaderLabel: each})

	// A restart on the same data directory.
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	st = startStack(t, ctx, dir, "")
	waitHead(t, ctx, st, 2)
	adjust(t, ctx, st, "req-3") // the writer rebuilt past the bad records and goes on
	waitHead(t, ctx, st, 3)
	proveAll(t, ctx, st, pub, []string{"req-3"})
	check("restarted", map[string]map[ledger.Reason]float64{proofs.ReaderLabel: each, "ledger": each})
	select {
	case <-st.Failed():
		t.Fatalf("the restarted stack stopped: %v", st.Err())
	default:
	}
}

func adjust(t *testing.T, ctx context.Context, st *Stack, id string) {
	t.Helper()
	v, err := st.Serde.Marshal(&avro.DebitRequest{RequestID: id, Kind: avro.RequestKindAdjustment, Account: "acct-1", VehicleID: "v1",
		Amount: 5, Reason: "goodwill", RequestedAt: time.UnixMilli(1_800_000_000_000).UTC()})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Producer.ProduceSync(ctx, pipelines.TopicLedgerRequests, []byte("acct-1"), v); err != nil {
		t.Fatal(err)
	}
}

func waitHead(t *testing.T, ctx context.Context, st *Stack, size uint64) {
	t.Helper()
	for {
		h, err := st.Ledger.Head(ctx)
		if err == nil && h.CaughtUp && h.TreeSize >= size {
			return
		}
		select {
		case <-st.Failed():
			t.Fatalf("the stack stopped: %v", st.Err())
		case <-ctx.Done():
			t.Fatalf("ledger head %+v, want tree size %d", h, size)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func publishedRecords(t *testing.T, ctx context.Context, st *Stack) []ledger.Record {
	t.Helper()
	r, err := blocks.New(blocks.Config{Kafka: st.Pipelines})
	if err != nil {
		t.Fatal(err)
	}
	var recs []ledger.Record
	if err := r.Blocks(ctx, func(rec ledger.Record) error { recs = append(recs, rec); return nil }); err != nil {
		t.Fatal(err)
	}
	return recs
}

func publishedBlocks(t *testing.T, ctx context.Context, st *Stack) []ledger.Record {
	var out []ledger.Record
	for _, r := range publishedRecords(t, ctx, st) {
		if r.Block != nil {
			out = append(out, r)
		}
	}
	return out
}

func encBlock(t *testing.T, st *Stack, b *ledger.Block) []byte {
	t.Helper()
	v, err := st.Serde.Marshal(b.Avro())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// proveAll asks the stack's proof API over HTTP for the proof of each
// entry id and checks it against the ledger key: the checkpoint is signed
// by it and the leaf is the published entry.
func proveAll(t *testing.T, ctx context.Context, st *Stack, pub ed25519.PublicKey, ids []string) {
	t.Helper()
	entries := map[string][]byte{}
	for _, r := range publishedBlocks(t, ctx, st) {
		for _, raw := range r.Block.Entries {
			if e, err := ledger.DecodeEntry(raw); err == nil {
				entries[e.ID] = raw
			}
		}
	}
	for _, id := range ids {
		resp, err := http.Get("http://" + st.HTTPAddr() + "/v1/ledger/entries/" + id + "/proof")
		if err != nil {
			t.Fatal(err)
		}
		var pr proofs.Proof
		err = json.NewDecoder(resp.Body).Decode(&pr)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Errorf("proof of %s: status %d, %v", id, resp.StatusCode, err)
			continue
		}
		if _, err := ledger.CheckBundle(&ledger.Bundle{Entry: entries[id], LeafIndex: pr.LeafIndex, TreeSize: pr.TreeSize, Root: pr.Root,
			Proof: pr.Proof, Checkpoint: pr.Checkpoint}, pub); err != nil {
			t.Errorf("proof of %s does not check: %v", id, err)
		}
	}
}

// metrics reads the stack's /metrics: series (name{labels}) -> value.
func metrics(t *testing.T, st *Stack) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + st.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// deadLetters are the dead letters of the blocks topic's readers.
func deadLetters(t *testing.T, ctx context.Context, st *Stack) []*avro.DeadLetter {
	t.Helper()
	rd, err := kafka.NewReader(st.Pipelines) // connected as the stack's stages are
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	var out []*avro.DeadLetter
	err = rd.ReadAll(ctx, pipelines.TopicDeadLetter, 0, func(r pipelines.Record) error {
		if string(r.Header("stage")) != blocks.AlertStage {
			return nil
		}
		var dl avro.DeadLetter
		if err := st.Serde.Unmarshal(r.Value, &dl); err != nil {
			return err
		}
		out = append(out, &dl)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
