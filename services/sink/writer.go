package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
)

// Dead-letter reason codes of the sink.
const (
	CodeDecode       = "decode"        // the value is not the topic's Avro record
	CodeUnknownTopic = "unknown_topic" // a topic the sink has no table for
)

// Writer writes batches of consumed records to ClickHouse: telemetry events
// to telemetry, daily scores to daily_scores, ledger entries to
// ledger_entries, redemption changes to redemptions. It is the Write of a
// pipelines.SinkStage.
//
// Exactly-once landing on top of at-least-once delivery: before each batch
// the Writer reads sink_offsets, the highest source offset stored per topic
// partition (kept by materialized views in the same insert as the rows),
// and skips records at or below it. A batch written again after a crash
// between the insert and the offset commit is therefore not stored twice,
// and the rollup views never count a row twice.
type Writer struct {
	conn  driver.Conn
	serde *schemas.Serde
	fp    uint64
	dead  func(ctx context.Context, recs []pipelines.Output) error
	stage string
	dlq   string
	now   func() time.Time
	log   *slog.Logger
	m     *metrics

	skipped atomic.Uint64
}

// Skipped is how many records Write skipped because their offsets were
// already stored (redeliveries after a crash or rebalance).
func (w *Writer) Skipped() uint64 { return w.skipped.Load() }

// WriterConfig configures NewWriter.
type WriterConfig struct {
	Conn  driver.Conn    // required
	Serde *schemas.Serde // default schemas.SingleObject()
	// DeadLetters produces dead-letter records (required unless the input
	// can never be bad); it must not return before they are acknowledged.
	DeadLetters func(ctx context.Context, recs []pipelines.Output) error
	Stage       string // stage name stamped on dead letters (default "sink")
	// DeadLetterTopic receives them (default pipelines.TopicDeadLetter).
	DeadLetterTopic string
	Now             func() time.Time // default time.Now
	Logger          *slog.Logger
	// Registerer receives the writer's metrics (nil: not registered).
	Registerer prometheus.Registerer
}

// NewWriter returns a Writer.
func NewWriter(cfg WriterConfig) (*Writer, error) {
	if cfg.Conn == nil {
		return nil, errors.New("sink: writer needs a ClickHouse connection")
	}
	if cfg.Serde == nil {
		cfg.Serde = schemas.SingleObject()
	}
	if cfg.Stage == "" {
		cfg.Stage = "sink"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.DeadLetterTopic == "" {
		cfg.DeadLetterTopic = pipelines.TopicDeadLetter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.DeadLetters == nil {
		cfg.DeadLetters = func(context.Context, []pipelines.Output) error {
			return errors.New("sink: no dead-letter producer")
		}
	}
	fp, err := schemas.Fingerprint(schemas.TelemetryEvent)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	return &Writer{conn: cfg.Conn, serde: cfg.Serde, fp: fp, dead: cfg.DeadLetters, stage: cfg.Stage, dlq: cfg.DeadLetterTopic,
		now: cfg.Now, log: cfg.Logger, m: newMetrics(cfg.Registerer)}, nil
}

type topicPartition struct {
	topic     string
	partition int32
}

// batch is one Write's rows, per table.
type batch struct {
	telemetry   telemetryRows
	scores      []row
	ledger      []row
	redemptions []row
	dead        []pipelines.Output
	deadCodes   []string
}

// Write stores recs. Undecodable records are dead-lettered (before
// anything is inserted, so a retried batch dead-letters them again rather
// than never); an error means nothing or part of the batch was stored and
// the same records should be written again.
func (w *Writer) Write(ctx context.Context, recs []pipelines.Record) error {
	if len(recs) == 0 {
		return nil
	}
	stored, err := w.storedOffsets(ctx, recs)
	if err != nil {
		return err
	}
	var b batch
	skipped := 0
	for i := range recs {
		rec := &recs[i]
		if hw, ok := stored[topicPartition{rec.Topic, rec.Partition}]; ok && rec.Offset <= hw {
			skipped++
			continue
		}
		if code, err := w.add(&b, rec); err != nil {
			out, derr := w.deadLetter(rec, code, err)
			if derr != nil {
				return derr
			}
			b.dead = append(b.dead, out)
			b.deadCodes = append(b.deadCodes, code)
		}
	}
	if skipped > 0 {
		w.skipped.Add(uint64(skipped))
		w.m.skipped.Add(float64(skipped))
		w.log.Info("sink: skipped records already stored", "records", skipped)
	}
	if len(b.dead) > 0 {
		if err := w.dead(ctx, b.dead); err != nil {
			return fmt.Errorf("dead letters: %w", err)
		}
		for _, c := range b.deadCodes {
			w.m.dead.WithLabelValues(c).Inc()
		}
		w.log.Warn("sink: records dead-lettered", "records", len(b.dead))
	}
	if n := b.telemetry.len(); n > 0 {
		if err := w.sendColumns(ctx, telemetryInsert, b.telemetry.columns()); err != nil {
			return fmt.Errorf("insert %d telemetry rows: %w", n, err)
		}
		w.m.rows.WithLabelValues("telemetry").Add(float64(n))
	}
	for _, t := range []struct {
		table, insert string
		rows          []row
	}{{"daily_scores", scoresInsert, b.scores}, {"ledger_entries", ledgerInsert, b.ledger}, {"redemptions", redemptionsInsert, b.redemptions}} {
		if err := w.sendRows(ctx, t.insert, t.rows); err != nil {
			return err
		}
		w.m.rows.WithLabelValues(t.table).Add(float64(len(t.rows)))
	}
	return nil
}

// add decodes rec into its table's rows. Records that carry no row (scoring
// watermarks) are skipped.
func (w *Writer) add(b *batch, rec *pipelines.Record) (code string, err error) {
	switch rec.Topic {
	case pipelines.TopicTelemetryClean, pipelines.TopicTelemetryRaw:
		ev, err := decodeEvent(w.serde, w.fp, rec.Value)
		if err != nil {
			return CodeDecode, err
		}
		b.telemetry.add(&ev, rec)
	case pipelines.TopicScores:
		name, m, err := w.serde.Decode(rec.Value)
		if err != nil {
			return CodeDecode, err
		}
		switch name {
		case schemas.DailyScore:
			r, err := scoreRow(m, rec)
			if err != nil {
				return CodeDecode, err
			}
			b.scores = append(b.scores, r)
		case schemas.Watermark:
		default:
			return CodeDecode, fmt.Errorf("record %s on %s", name, rec.Topic)
		}
	case pipelines.TopicLedgerEntries:
		m, err := w.serde.DecodeAs(schemas.LedgerEntry, rec.Value)
		if err != nil {
			return CodeDecode, err
		}
		r, err := ledgerRow(m, rec)
		if err != nil {
			return CodeDecode, err
		}
		b.ledger = append(b.ledger, r)
	case pipelines.TopicRedemptionStatus:
		m, err := w.serde.DecodeAs(schemas.Redemption, rec.Value)
		if err != nil {
			return CodeDecode, err
		}
		r, err := redemptionRow(m, rec)
		if err != nil {
			return CodeDecode, err
		}
		b.redemptions = append(b.redemptions, r)
	default:
		return CodeUnknownTopic, fmt.Errorf("no table for topic %s", rec.Topic)
	}
	return "", nil
}

// storedOffsets reads the highest stored offset of each topic in recs.
func (w *Writer) storedOffsets(ctx context.Context, recs []pipelines.Record) (map[topicPartition]int64, error) {
	topics := map[string]bool{}
	var list []string
	for i := range recs {
		if !topics[recs[i].Topic] {
			topics[recs[i].Topic] = true
			list = append(list, recs[i].Topic)
		}
	}
	rows, err := w.conn.Query(ctx, "SELECT topic, partition, max(max_offset) FROM sink_offsets WHERE has(?, topic) GROUP BY topic, partition", list)
	if err != nil {
		return nil, fmt.Errorf("read sink_offsets: %w", err)
	}
	defer rows.Close()
	out := map[topicPartition]int64{}
	for rows.Next() {
		var tp topicPartition
		var off int64
		if err := rows.Scan(&tp.topic, &tp.partition, &off); err != nil {
			return nil, fmt.Errorf("read sink_offsets: %w", err)
		}
		out[tp] = off
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read sink_offsets: %w", err)
	}
	return out, nil
}

// sendColumns inserts whole columns (the fast path: no per-row reflection).
func (w *Writer) sendColumns(ctx context.Context, insert string, cols []any) error {
	bt, err := w.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	for i, c := range cols {
		if err := bt.Column(i).Append(c); err != nil {
			bt.Abort()
			return fmt.Errorf("column %d: %w", i, err)
		}
	}
	return bt.Send()
}

func (w *Writer) sendRows(ctx context.Context, insert string, rows []row) error {
	if len(rows) == 0 {
		return nil
	}
	bt, err := w.conn.PrepareBatch(ctx, insert)
	if err != nil {
		return err
	}
	for _, r := range rows {
		if err := bt.Append(r...); err != nil {
			bt.Abort()
			return fmt.Errorf("append: %w", err)
		}
	}
	if err := bt.Send(); err != nil {
		return fmt.Errorf("insert %d rows: %w", len(rows), err)
	}
	return nil
}

// deadLetter encodes rec as a schemas.DeadLetter for the dead-letter topic.
func (w *Writer) deadLetter(rec *pipelines.Record, code string, cause error) (pipelines.Output, error) {
	var key any
	if rec.Key != nil {
		key = map[string]any{"bytes": rec.Key}
	}
	value := rec.Value
	if value == nil {
		value = []byte{}
	}
	b, err := w.serde.Encode(schemas.DeadLetter, map[string]any{
		"stage":            w.stage,
		"reason_code":      code,
		"error":            cause.Error(),
		"source_topic":     rec.Topic,
		"source_partition": rec.Partition,
		"source_offset":    rec.Offset,
		"key":              key,
		"value":            value,
		"time":             w.now().UTC().Truncate(time.Millisecond),
	})
	if err != nil {
		return pipelines.Output{}, fmt.Errorf("encode dead letter: %w", err)
	}
	return pipelines.Output{Topic: w.dlq, Key: rec.Key, Value: b,
		Headers: []pipelines.Header{{Key: "stage", Value: []byte(w.stage)}, {Key: "code", Value: []byte(code)}}}, nil
}
