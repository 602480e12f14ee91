package blocks_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
	"github.com/minecart/minecart/services/ledger/blocks"
	"github.com/minecart/minecart/services/ledger/ledgertest"
	"github.com/minecart/minecart/services/ledger/proofs"
)

// producePoisoned writes the poisoned book's records to the blocks topic
// (garbage bytes where the fixture has no block) and returns them.
func producePoisoned(t *testing.T, brokers []string, p ledgertest.Poisoned) {
	t.Helper()
	var recs []kafka.Output
	for i, b := range p.Records {
		v := []byte(fmt.Sprintf("garbage %d \x00\xff", i))
		key := []byte("junk")
		if b != nil {
			var err error
			if v, err = schemas.SingleObject().Marshal(b.Avro()); err != nil {
				t.Fatal(err)
			}
			key = []byte(strconv.FormatUint(b.Header.Height, 10))
		}
		recs = append(recs, kafka.Output{Topic: pipelines.TopicLedgerBlocks, Key: key, Value: v})
	}
	kafkatest.Produce(t, brokers, recs...)
}

// TestPoisonedTopic: the proof server follows a blocks topic with a
// duplicate, a forged block, an out-of-order block, garbage, a signed
// header with other entries and a fork among the genuine blocks: it
// serves the whole genuine book, counts each reason, logs, and writes one
// dead letter per bad record, once, also when a second server (a restart)
// reads the same topic.
func TestPoisonedTopic(t *testing.T) {
	brokers := kafkatest.Broker(t)
	signer, _ := ledger.NewSigner(ledgertest.Origin, ledgertest.Key(1))
	p := ledgertest.Poison(t, signer)
	producePoisoned(t, brokers, p)
	cfg := kafkatest.Config(brokers)
	producer, err := kafka.NewProducer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	want := map[ledger.Reason]int{}
	for _, r := range p.Reasons {
		if r != "" {
			want[r]++
		}
	}
	head := p.Genuine[len(p.Genuine)-1].Header
	for run := range 2 {
		r, err := blocks.New(blocks.Config{Kafka: cfg})
		if err != nil {
			t.Fatal(err)
		}
		alerts, err := blocks.NewAlerts(blocks.AlertsConfig{Kafka: cfg, Producer: producer})
		if err != nil {
			t.Fatal(err)
		}
		reg := prometheus.NewRegistry()
		srv, err := proofs.NewServer(proofs.Config{Blocks: r, PublicKey: signer.Public(), Alerts: alerts, Registerer: reg, Logger: kafkatest.Logger()})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		done := make(chan error, 1)
		go func() { done <- srv.Run(ctx) }()
		for {
			h, _ := srv.Head(ctx)
			if h.CaughtUp && h.TreeSize == head.TreeSize {
				break
			}
			select {
			case err := <-done:
				t.Fatalf("run %d: the server stopped: %v", run, err)
			case <-ctx.Done():
				t.Fatalf("run %d: head %+v, want tree size %d", run, h, head.TreeSize)
			case <-time.After(20 * time.Millisecond):
			}
		}
		h, _ := srv.Head(ctx)
		if h.Height != head.Height || h.BlockHash != head.Hash().String() || h.BadRecords != uint64(len(p.Reasons)-len(p.Genuine)) {
			t.Errorf("run %d: head %+v, want the genuine head and %d bad records", run, h, len(p.Reasons)-len(p.Genuine))
		}
		// Every genuine entry has a proof from the server that checks
		// against the ledger key.
		var leaves [][]byte
		for _, b := range p.Genuine {
			leaves = append(leaves, b.Entries...)
		}
		for i, raw := range leaves {
			pr, err := srv.InclusionProof(ctx, uint64(i), 0)
			if err != nil {
				t.Fatalf("run %d: proof of leaf %d: %v", run, i, err)
			}
			if _, err := ledger.CheckBundle(&ledger.Bundle{Entry: raw, LeafIndex: pr.LeafIndex, TreeSize: pr.TreeSize, Root: pr.Root,
				Proof: pr.Proof, Checkpoint: pr.Checkpoint}, signer.Public()); err != nil {
				t.Errorf("run %d: proof of leaf %d: %v", run, i, err)
			}
		}
		// And the CLI's Prove, reading the same topic, agrees.
		for _, id := range []string{"req-3", "req-4", "v5/2026-11-02"} {
			bundle, err := ledger.Prove(ctx, r, signer.Public(), id)
			if err != nil {
				t.Fatalf("prove %s: %v", id, err)
			}
			if _, err := ledger.CheckBundle(bundle, signer.Public()); err != nil || bundle.Root != h.Root {
				t.Errorf("run %d: bundle of %s: %v (root %s, head %s)", run, id, err, bundle.Root, h.Root)
			}
		}
		for _, reason := range ledger.Reasons {
			got := testutil.ToFloat64(srv.BadBlocksCounter().WithLabelValues(proofs.ReaderLabel, string(reason)))
			if int(got) != want[reason] {
				t.Errorf("run %d: %s counted %v, want %d", run, reason, got, want[reason])
			}
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run %d: %v", run, err)
		}
	}
	// One dead letter per bad record, though two servers read the topic.
	rctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dls, err := kafkatest.ReadCommitted(rctx, brokers, pipelines.TopicDeadLetter)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int64]string{}
	for _, rec := range dls {
		var dl avro.DeadLetter
		if err := schemas.SingleObject().Unmarshal(rec.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Stage != blocks.AlertStage || string(rec.Header("code")) != dl.ReasonCode || dl.SourceTopic != pipelines.TopicLedgerBlocks {
			t.Errorf("dead letter %+v", dl)
		}
		if _, dup := got[dl.SourceOffset]; dup {
			t.Errorf("offset %d dead-lettered twice", dl.SourceOffset)
		}
		got[dl.SourceOffset] = dl.ReasonCode
		t.Logf("dead letter: offset %d %s: %s", dl.SourceOffset, dl.ReasonCode, dl.Error)
	}
	for i, r := range p.Reasons {
		if r != "" && got[int64(i)] != string(r) {
			t.Errorf("offset %d: dead letter %q, want %q", i, got[int64(i)], r)
		}
	}
	if len(got) != len(p.Reasons)-len(p.Genuine) {
		t.Errorf("%d dead letters, want %d", len(got), len(p.Reasons)-len(p.Genuine))
	}
}
