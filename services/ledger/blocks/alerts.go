package blocks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// AlertStage is the stage named by the dead letters of bad blocks (their
// "stage" header and field); their reason code is the ledger.Reason.
const AlertStage = "ledger-reader"

// AlertsConfig configures Alerts.
type AlertsConfig struct {
	// Kafka is how to reach the brokers; its Serde encodes the dead
	// letters, DeadLetterTopic (default pipelines.TopicDeadLetter)
	// receives them and Now stamps them (default time.Now).
	Kafka kafka.Config
	// Producer writes the dead letters.
	Producer *kafka.Producer
	// Topic is the blocks topic (default pipelines.TopicLedgerBlocks).
	Topic string
}

// Alerts writes the dead letter of each bad record of the blocks topic,
// as the runtime writes a stage's rejects (schemas.DeadLetter, headers
// stage and code): stage AlertStage, reason code the ledger.Reason, the
// error naming offset, height and what is wrong, and the record's key and
// value as stored. Each bad record is dead-lettered once: before the
// first, Alerts reads the dead letters already written (by an earlier run
// on the same topics) and passes over their offsets; if it cannot read
// them (no Read on the dead-letter topic), it writes anyway and says so.
// Safe for concurrent use.
type Alerts struct {
	cfg      kafka.Config
	producer *kafka.Producer
	serde    *schemas.Serde
	topic    string
	dlTopic  string
	now      func() time.Time

	mu   sync.Mutex
	seen map[int64]bool // offsets of the blocks topic dead-lettered; nil until loaded
}

// NewAlerts returns Alerts writing with cfg.Producer.
func NewAlerts(cfg AlertsConfig) (*Alerts, error) {
	if err := cfg.Kafka.Validate(); err != nil {
		return nil, fmt.Errorf("ledger alerts: %w", err)
	}
	if cfg.Producer == nil {
		return nil, errors.New("ledger alerts: no producer")
	}
	a := &Alerts{
		cfg: cfg.Kafka, producer: cfg.Producer, serde: cfg.Kafka.Serde, now: cfg.Kafka.Now,
		topic:   cmp.Or(cfg.Topic, pipelines.TopicLedgerBlocks),
		dlTopic: cmp.Or(cfg.Kafka.DeadLetterTopic, pipelines.TopicDeadLetter),
	}
	if a.serde == nil {
		a.serde = schemas.SingleObject()
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Alert writes the dead letter of rec, which bad says is wrong, unless it
// was written before.
func (a *Alerts) Alert(ctx context.Context, rec ledger.Record, bad *ledger.BadRecord) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	var loadErr error
	if a.seen == nil {
		// A reader that may not read the dead-letter topic still alerts
		// (perhaps again after a restart): a repeated alert beats none.
		if seen, err := a.load(ctx); err != nil {
			loadErr = fmt.Errorf("ledger alerts: earlier dead letters not read, this one may repeat: %w", err)
		} else {
			a.seen = seen
		}
	}
	if a.seen[rec.Offset] {
		return nil
	}
	value := rec.Value
	if value == nil {
		value = []byte{}
	}
	b, err := a.serde.Marshal(&avro.DeadLetter{
		Stage: AlertStage, ReasonCode: string(bad.Reason), Error: bad.Error(),
		SourceTopic: a.topic, SourcePartition: 0, SourceOffset: rec.Offset,
		Key: rec.Key, Value: value, Time: a.now().UTC(),
	})
	if err != nil {
		return fmt.Errorf("ledger alerts: encode dead letter: %w", err)
	}
	if err := a.producer.ProduceSync(ctx, a.dlTopic, rec.Key, b,
		pipelines.Header{Key: "stage", Value: []byte(AlertStage)},
		pipelines.Header{Key: "code", Value: []byte(bad.Reason)},
	); err != nil {
		return errors.Join(loadErr, fmt.Errorf("ledger alerts: %w", err))
	}
	if a.seen != nil {
		a.seen[rec.Offset] = true
	}
	return loadErr
}

// load reads the dead-letter topic for the offsets of the blocks topic
// dead-lettered before.
func (a *Alerts) load(ctx context.Context) (map[int64]bool, error) {
	kr, err := kafka.NewReader(a.cfg)
	if err != nil {
		return nil, err
	}
	defer kr.Close()
	ends, err := kr.Ends(ctx, a.dlTopic)
	if err != nil {
		return nil, err
	}
	seen := map[int64]bool{}
	for p, end := range ends {
		err := kr.Read(ctx, a.dlTopic, p, 0, end, func(r pipelines.Record) error {
			if string(r.Header("stage")) != AlertStage {
				return nil
			}
			var dl avro.DeadLetter
			if err := a.serde.Unmarshal(r.Value, &dl); err != nil {
				return nil // not ours to judge
			}
			if dl.SourceTopic == a.topic {
				seen[dl.SourceOffset] = true
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return seen, nil
}
