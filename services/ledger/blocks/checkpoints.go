package blocks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/pipelines/prom"
)

// CheckpointStore is the publisher's store of cosigned checkpoints
// (stage.CheckpointStore, docs/ledger.md "Where cosigned checkpoints are
// stored"): the compacted topic minecart.ledger.checkpoints first (key =
// the size in 20 digits), then a record in the entries topic (its own
// transaction, each size at most once and after its entries:
// entrycheckpoints.go; the publication counts once both are written),
// then a copy in every partner topic (pipelines.PartnerCheckpointKey, its
// headers, the note as the value; docs/partners.md), so a partner reading
// only its own topics gets the published checkpoints in order with its
// orders. The partner topics are those of the cluster at that moment
// (pipelines.IsPartnerTopic); a topic the copy could not reach is logged
// and counted (minecart_ledger_partner_checkpoint_failures_total) and
// gets the next checkpoint, which covers this one.
type CheckpointStore struct {
	Kafka    kafka.Config
	Producer *kafka.Producer
	Logger   *slog.Logger
	// TopicsTTL is how long the list of partner topics is reused before
	// it is read again (default 5s; it costs a client and a metadata
	// round trip, ~4 ms here, against ~0.1 ms per record).
	TopicsTTL time.Duration
	// EntriesTopic receives a checkpoint record per published size
	// (default pipelines.TopicLedgerEntries), written in transactions
	// under TxnID (default DefaultCheckpointTxnID): one id per ledger, so
	// replicas of the publisher fence each other.
	EntriesTopic, TxnID string

	entriesOnce sync.Once
	entries     *entriesWriter

	mu       sync.Mutex
	topics   []string
	listedAt time.Time

	failures  prometheus.Counter
	copies    prometheus.Counter
	inEntries prometheus.Counter
}

// NewCheckpointStore registers the store's metrics.
func NewCheckpointStore(cfg kafka.Config, p *kafka.Producer, log *slog.Logger, reg prometheus.Registerer) (*CheckpointStore, error) {
	if log == nil {
		log = slog.Default()
	}
	m := prom.NewMetrics(reg)
	s := &CheckpointStore{Kafka: cfg, Producer: p, Logger: log,
		failures:  m.Counter("minecart_ledger_partner_checkpoint_failures_total", "Publications whose copy of the cosigned checkpoint did not reach every partner topic."),
		copies:    m.Counter("minecart_ledger_partner_checkpoints_total", "Cosigned checkpoints written to partner topics (one per topic)."),
		inEntries: m.Counter("minecart_ledger_entries_checkpoints_total", "Cosigned checkpoint records written to the entries topic (each size once)."),
	}
	if err := m.Err(); err != nil {
		return nil, fmt.Errorf("checkpoint store: %w", err)
	}
	return s, nil
}

// Store writes the cosigned checkpoint of tree size size.
func (s *CheckpointStore) Store(ctx context.Context, size uint64, cosigned []byte) error {
	if err := s.Producer.ProduceSync(ctx, pipelines.TopicLedgerCheckpoints, fmt.Appendf(nil, "%020d", size), cosigned); err != nil {
		return err
	}
	if _, err := s.ToEntries(ctx, size, cosigned); err != nil {
		return err
	}
	n, err := s.ToPartners(ctx, size, cosigned)
	if err != nil {
		s.failures.Inc()
		s.Logger.Error("cosigned checkpoint not copied to every partner topic (the next one covers it)", "size", size, "topics", n, "err", err)
		return nil
	}
	return nil
}

// ToEntries writes the checkpoint record of size size to the entries
// topic unless it holds that size or a larger one already; it reports
// whether it wrote.
func (s *CheckpointStore) ToEntries(ctx context.Context, size uint64, cosigned []byte) (bool, error) {
	s.entriesOnce.Do(func() {
		s.entries = &entriesWriter{cfg: s.Kafka, topic: cmp.Or(s.EntriesTopic, pipelines.TopicLedgerEntries), txnID: cmp.Or(s.TxnID, DefaultCheckpointTxnID)}
	})
	if s.entries == nil {
		return false, errors.New("checkpoint store: closed")
	}
	wrote, err := s.entries.write(ctx, size, cosigned)
	if wrote {
		s.inEntries.Inc()
	}
	return wrote, err
}

// Close closes the entries topic's transactional client.
func (s *CheckpointStore) Close() {
	s.entriesOnce.Do(func() {})
	if s.entries != nil {
		s.entries.close()
	}
}

// ToPartners writes the cosigned checkpoint to every partner topic and
// returns how many it wrote to.
func (s *CheckpointStore) ToPartners(ctx context.Context, size uint64, cosigned []byte) (int, error) {
	topics, err := s.partnerTopics(ctx)
	if err != nil {
		return 0, err
	}
	recs := make([]kafka.Output, len(topics))
	for i, t := range topics {
		recs[i] = kafka.Output{Topic: t, Key: pipelines.PartnerCheckpointKey(size), Value: cosigned, Headers: pipelines.PartnerCheckpointHeaders(size)}
	}
	if err := s.Producer.ProduceBatch(ctx, recs); err != nil {
		return 0, err
	}
	s.copies.Add(float64(len(topics)))
	return len(topics), nil
}

// partnerTopics is the cluster's partner topics, read again once
// TopicsTTL has passed.
func (s *CheckpointStore) partnerTopics(ctx context.Context) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.listedAt.IsZero() || time.Since(s.listedAt) >= cmp.Or(s.TopicsTTL, 5*time.Second) {
		topics, err := kafka.ListTopics(ctx, s.Kafka, pipelines.IsPartnerTopic)
		if err != nil {
			return nil, err
		}
		s.topics, s.listedAt = topics, time.Now()
	}
	return s.topics, nil
}
