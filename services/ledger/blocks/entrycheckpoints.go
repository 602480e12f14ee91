package blocks

import (
	"cmp"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
)

// The cosigned checkpoint in the entries topic (docs/ledger.md, "The
// checkpoint record in the entries topic"): after the checkpoints topic,
// the publisher writes the cosigned note to minecart.ledger.entries as a
// record of the partner topics' form (pipelines.PartnerCheckpointKey, its
// headers, the note as the value), in a Kafka transaction of its own
// under one transactional id per ledger (DefaultCheckpointTxnID):
//
//   - never twice: after each InitProducerID (which fences every earlier
//     writer of that id and ends its open transaction) the writer reads
//     the entries topic to its stable end (kafka.Reader.End waits for the
//     transactions open at that moment) and takes the size of the last
//     checkpoint record there; it writes only larger sizes. A writer
//     fenced meanwhile (another replica's publisher, a restart) fails its
//     produce or commit, starts again with a new InitProducerID and reads
//     again. So sizes strictly increase along the topic, each at most once.
//   - never before its entries: the publisher cosigns a size only once it
//     read, read_committed, the block that reaches it, and the stage
//     writes a block and its entries in one transaction: every entry of
//     index < size is committed, at a lower offset, before the checkpoint
//     record is produced. (Entries of a later block whose transaction was
//     open at that moment may sit at lower offsets too: a reader takes the
//     leaves 0..size-1, not "everything before".)
//
// It cannot be the block's own transaction: the quorum is met after the
// block is committed, by witnesses that only cosign committed books.

// DefaultCheckpointTxnID is the transactional id of the writer of
// checkpoint records into the entries topic (under the prefix "ledger"
// that infra/kafka/init-acls.sh grants the services for their
// transactional ids).
const DefaultCheckpointTxnID = "ledger-publisher-checkpoints"

// entriesWriter writes checkpoint records into the entries topic.
type entriesWriter struct {
	cfg   kafka.Config
	topic string
	txnID string

	mu   sync.Mutex
	cl   *kgo.Client
	last uint64 // size of the last checkpoint record in the topic (0: none)
}

// write appends the checkpoint of size size to the entries topic unless
// the topic already holds it or a larger one. It reports whether it wrote.
func (w *entriesWriter) write(ctx context.Context, size uint64, note []byte) (bool, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.cl == nil {
		if err := w.init(ctx); err != nil {
			return false, err
		}
	}
	if size <= w.last {
		return false, nil
	}
	if err := w.cl.BeginTransaction(); err != nil {
		w.reset()
		return false, fmt.Errorf("checkpoint record: begin transaction: %w", err)
	}
	rec := &kgo.Record{Topic: w.topic, Key: pipelines.PartnerCheckpointKey(size), Value: note}
	for _, h := range pipelines.PartnerCheckpointHeaders(size) {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	if err := w.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		_ = w.cl.EndTransaction(context.WithoutCancel(ctx), kgo.TryAbort)
		w.reset()
		return false, fmt.Errorf("checkpoint record: produce to %s: %w", w.topic, err)
	}
	if err := w.cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// The outcome may be unknown: the next write starts with a new
		// InitProducerID, which settles it, and reads the topic again.
		w.reset()
		return false, fmt.Errorf("checkpoint record: commit: %w", err)
	}
	w.last = size
	return true, nil
}

// init fences earlier writers of the transactional id and reads the size
// of the last checkpoint record in the topic.
func (w *entriesWriter) init(ctx context.Context) error {
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(w.cfg.Brokers...)}, append(w.cfg.ClientOptions,
		kgo.TransactionalID(w.txnID),
		kgo.TransactionTimeout(cmp.Or(w.cfg.TransactionTimeout, 30*time.Second)),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.DefaultProduceTopic(w.topic),
	)...)...)
	if err != nil {
		return fmt.Errorf("checkpoint record: %w", err)
	}
	if _, _, err := cl.ProducerID(ctx); err != nil {
		cl.Close()
		return fmt.Errorf("checkpoint record: init producer id %s: %w", w.txnID, err)
	}
	last, err := LastEntriesCheckpoint(ctx, w.cfg, w.topic)
	if err != nil {
		cl.Close()
		return err
	}
	w.cl, w.last = cl, last
	return nil
}

func (w *entriesWriter) reset() {
	if w.cl != nil {
		w.cl.Close()
		w.cl = nil
	}
}

func (w *entriesWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.reset()
}

// LastEntriesCheckpoint returns the tree size of the last checkpoint
// record in the entries topic (partition 0) up to its stable end, 0 if it
// has none. It reads back from the end in windows of 1,024 records,
// doubled, so a topic with a checkpoint near its end costs one short read.
func LastEntriesCheckpoint(ctx context.Context, cfg kafka.Config, topic string) (uint64, error) {
	rd, err := kafka.NewReader(cfg)
	if err != nil {
		return 0, err
	}
	defer rd.Close()
	end, err := rd.End(ctx, topic, 0)
	if err != nil {
		return 0, fmt.Errorf("checkpoint record: %w", err)
	}
	for window, hi := int64(1024), end; hi > 0; window *= 2 {
		lo := max(0, hi-window)
		var last uint64
		var found bool
		err := rd.Read(ctx, topic, 0, lo, hi, func(r pipelines.Record) error {
			if !pipelines.IsCheckpointRecord(&r) {
				return nil
			}
			n, err := pipelines.CheckpointRecordSize(&r)
			if err != nil {
				return err
			}
			last, found = n, true
			return nil
		})
		if err != nil {
			return 0, fmt.Errorf("checkpoint record: read %s: %w", topic, err)
		}
		if found {
			return last, nil
		}
		hi = lo
	}
	return 0, nil
}
