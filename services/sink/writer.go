package sink

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/prom"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/services/shred"
	"github.com/minecart/minecart/services/telemetry"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// Dead-letter reason codes of the sink.
const (
	CodeDecode       = "decode"        // the value is not the topic's Avro record
	CodeUnknownTopic = "unknown_topic" // a topic the sink has no table for
)

// writer writes batches of consumed records to ClickHouse: telemetry events
// to telemetry, daily scores to daily_scores, ledger entries to
// ledger_entries, redemption changes to redemptions. Its Write is the
// stage's.
//
// Exactly-once landing on top of at-least-once delivery: before each batch
// the writer reads sink_offsets, the highest source offset stored per topic
// partition (kept by materialized views in the same insert as the rows),
// and skips records at or below it. A batch written again after a crash
// between the insert and the offset commit is therefore not stored twice,
// and the rollup views never count a row twice. Skipped records are still
// decoded: a bad one is rejected again, so a crash between the insert and
// its dead letters loses none.
//
// A Write inserts its records in chunks of InsertRows, in order, and
// decodes and encodes the next chunk while the server stores the current
// one. A Write that fails part way has stored a prefix of each partition's
// records, which sink_offsets covers: written again, it skips them.
type writer struct {
	// verified: the partitions whose stored rows this writer has read from
	// the tables themselves since it started or since a Write failed
	// (verifyStored); for those, sink_offsets is trusted.
	verified map[topicPartition]bool

	conn   driver.Conn
	serde  *schemas.Serde
	events *wire.Codec // telemetry's specialised decoder for the serde's framing
	log    *slog.Logger
	unseal *shred.Reader // opens sealed scores (Config.Pseudonyms; nil: none)
	m      *metrics
	wire   wireTypes
	chunk  int
}

type metrics struct {
	rows     *prometheus.CounterVec // by table
	skipped  prometheus.Counter
	shredded prometheus.Counter
}

func newWriter(cfg Config) (*writer, error) {
	codec, err := wire.NewCodec(cfg.Serde)
	if err != nil {
		return nil, fmt.Errorf("sink: %w", err)
	}
	m := prom.NewMetrics(cfg.Registerer)
	w := &writer{verified: map[topicPartition]bool{}, conn: cfg.Conn, serde: cfg.Serde, events: codec, log: cfg.Logger, chunk: cfg.InsertRows, m: &metrics{
		rows:     m.CounterVec("minecart_sink_inserted_rows_total", "Rows inserted into ClickHouse, by table.", "table"),
		skipped:  m.Counter("minecart_sink_skipped_total", "Records skipped because their offsets were already stored (redeliveries)."),
		shredded: m.Counter("minecart_sink_shredded_total", "Sealed records skipped because their identity's key is destroyed (erased): no row (docs/privacy.md)."),
	}}
	if cfg.Pseudonyms != nil {
		w.unseal = &shred.Reader{Keys: cfg.Pseudonyms, Serde: cfg.Serde}
	}
	return w, m.Err()
}

type topicPartition struct {
	topic     string
	partition int32
}

// batch is one chunk's rows, per table, ready to insert.
type batch struct {
	telemetry   telemetryRows
	size        int // records in the chunk, to size telemetry's columns once
	scores      []row
	ledger      []row
	redemptions []row
	rejected    []pipelines.Rejected
	skipped     int

	tele driver.Batch // the telemetry insert, prepared with its columns
	err  error        // preparing failed: nothing of the chunk is stored
}

// abort releases the prepared insert of a chunk that will not be sent.
func (b *batch) abort() {
	if b.tele != nil && !b.tele.IsSent() {
		b.tele.Abort()
	}
}

// Write stores recs and returns the undecodable ones; an error means
// nothing or part of the batch was stored and the same records should be
// written again.
func (w *writer) Write(ctx context.Context, recs []pipelines.Record) ([]pipelines.Rejected, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	stored, err := w.storedOffsets(ctx, recs)
	if err != nil {
		return nil, err
	}
	set, err := w.verifyStored(ctx, recs, stored)
	if err != nil {
		return nil, err
	}
	// One goroutine prepares chunk k+1 (Avro decode, columns appended to
	// clickhouse-go's batch) while this one stores chunk k (clickhouse-go
	// encodes and sends it, the server inserts it): with a core to spare,
	// most of the client's work hides behind the server's. Chunks are
	// stored strictly in order, so a failure leaves a stored prefix.
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan *batch)
	go func() {
		defer close(chunks)
		for lo := 0; lo < len(recs); lo += w.chunk {
			b := w.prepare(pctx, recs[lo:min(lo+w.chunk, len(recs))], set)
			select {
			case chunks <- b:
			case <-pctx.Done():
				b.abort()
				return
			}
			if b.err != nil {
				return
			}
		}
	}()
	var werr error
	var rejected []pipelines.Rejected
	for b := range chunks {
		if werr == nil {
			werr = w.store(ctx, b)
			if werr != nil {
				cancel()
			}
			rejected = append(rejected, b.rejected...)
		}
		b.abort()
	}
	if werr != nil {
		clear(w.verified) // what a failed insert left is read again
		return nil, werr
	}
	for i := range recs {
		w.verified[topicPartition{recs[i].Topic, recs[i].Partition}] = true
	}
	return rejected, nil
}

// prepare decodes a chunk of records into rows and prepares its telemetry
// insert.
func (w *writer) prepare(ctx context.Context, recs []pipelines.Record, stored storedSet) *batch {
	b := &batch{size: len(recs)}
	for i := range recs {
		rec := &recs[i]
		skip := stored.has(rec)
		if skip {
			b.skipped++
		}
		code, err := w.add(ctx, b, rec, skip)
		var te transientError
		if errors.As(err, &te) {
			b.err = cmp.Or(b.err, err) // the batch fails and is retried
		} else if err != nil {
			b.rejected = append(b.rejected, pipelines.Rejected{Record: *rec, Code: code, Err: err})
		}
	}
	if n := b.telemetry.len(); n > 0 && b.err == nil { // a transient error fails the whole batch: keep it
		b.tele, b.err = w.prepareColumns(ctx, telemetryInsert, b.telemetry.columns())
		if b.err != nil {
			b.err = fmt.Errorf("insert %d telemetry rows: %w", n, b.err)
		}
	}
	return b
}

// store inserts a prepared chunk's rows.
func (w *writer) store(ctx context.Context, b *batch) error {
	if b.err != nil {
		return b.err
	}
	if b.skipped > 0 {
		w.m.skipped.Add(float64(b.skipped))
		w.log.Info("sink: skipped records already stored", "records", b.skipped)
	}
	if b.tele != nil {
		n := b.telemetry.len()
		if err := b.tele.Send(); err != nil {
			w.wire.forget(telemetryInsert)
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

// add decodes rec into its table's rows, or only decodes it when skip (its
// rows are stored already). Records that carry no row (scoring watermarks,
// gateway time marks, the ledger's checkpoint records) are skipped.
func (w *writer) add(ctx context.Context, b *batch, rec *pipelines.Record, skip bool) (code string, err error) {
	switch rec.Topic {
	case pipelines.TopicTelemetryClean, pipelines.TopicTelemetryRaw:
		if pipelines.IsMark(rec) {
			return "", nil // a gateway's time mark: no row
		}
		ev, err := w.events.DecodeEvent(rec.Value, telemetry.Limits{})
		if err != nil || skip {
			return CodeDecode, err
		}
		if b.telemetry.len() == 0 {
			b.telemetry.grow(b.size)
		}
		b.telemetry.add(&ev, rec)
	case pipelines.TopicScores:
		r, err := w.scoreRow(ctx, rec)
		if err != nil || skip || r == nil {
			return CodeDecode, err
		}
		b.scores = append(b.scores, r)
	case pipelines.TopicLedgerEntries:
		if pipelines.IsCheckpointRecord(rec) {
			return "", nil // the cosigned checkpoint among the entries: no row
		}
		r, err := w.ledgerRow(rec)
		if err != nil || skip {
			return CodeDecode, err
		}
		b.ledger = append(b.ledger, r)
	case pipelines.TopicRedemptionStatus:
		r, err := w.redemptionRow(ctx, rec)
		if err != nil || skip || r == nil {
			return CodeDecode, err
		}
		b.redemptions = append(b.redemptions, r)
	default:
		return CodeUnknownTopic, fmt.Errorf("no table for topic %s", rec.Topic)
	}
	return "", nil
}

// storedSet is what a Write finds stored of its records: below a
// partition's watermark (sink_offsets), or, for a partition read from its
// table (verifyStored), exactly the offsets found there.
type storedSet struct {
	watermark map[topicPartition]int64
	exact     map[topicPartition]map[int64]bool
}

func (s storedSet) has(rec *pipelines.Record) bool {
	tp := topicPartition{rec.Topic, rec.Partition}
	if offs, ok := s.exact[tp]; ok {
		return offs[rec.Offset]
	}
	hw, ok := s.watermark[tp]
	return ok && rec.Offset <= hw
}

// tableOf is the table whose src_topic, src_partition and src_offset
// columns record what the sink stored of a topic.
var tableOf = map[string]string{
	pipelines.TopicTelemetryClean:   "telemetry",
	pipelines.TopicTelemetryRaw:     "telemetry",
	pipelines.TopicScores:           "daily_scores",
	pipelines.TopicLedgerEntries:    "ledger_entries",
	pipelines.TopicRedemptionStatus: "redemptions",
}

// verifyStored reads, for each partition of recs not verified since the
// writer started or since a Write failed, which offsets of the batch's
// range its table holds, and makes those exactly the stored ones.
//
// sink_offsets is kept by materialized views, which ClickHouse writes
// after the table's own part: a kill between the two (the sink's process,
// or the embedded engine's) left rows stored that sink_offsets did not
// cover, and the next delivery stored them again (a chaos kill run found
// 1,821 telemetry rows doubled). So after a restart, a rebalance or a
// failed insert, the sink believes the tables, not the views; after one
// successful Write of a partition, the views are in step again.
func (w *writer) verifyStored(ctx context.Context, recs []pipelines.Record, stored map[topicPartition]int64) (storedSet, error) {
	set := storedSet{watermark: stored}
	type span struct{ lo, hi int64 }
	spans := map[topicPartition]*span{}
	for i := range recs {
		tp := topicPartition{recs[i].Topic, recs[i].Partition}
		if w.verified[tp] || tableOf[tp.topic] == "" {
			continue
		}
		if sp := spans[tp]; sp == nil {
			spans[tp] = &span{recs[i].Offset, recs[i].Offset}
		} else {
			sp.lo, sp.hi = min(sp.lo, recs[i].Offset), max(sp.hi, recs[i].Offset)
		}
	}
	if len(spans) == 0 {
		return set, nil
	}
	set.exact = map[topicPartition]map[int64]bool{}
	byTable := map[string][]topicPartition{}
	for tp := range spans {
		set.exact[tp] = map[int64]bool{}
		byTable[tableOf[tp.topic]] = append(byTable[tableOf[tp.topic]], tp)
	}
	for table, tps := range byTable {
		var cond strings.Builder
		var args []any
		for i, tp := range tps {
			if i > 0 {
				cond.WriteString(" OR ")
			}
			cond.WriteString("(src_topic = ? AND src_partition = ? AND src_offset BETWEEN ? AND ?)")
			args = append(args, tp.topic, tp.partition, spans[tp].lo, spans[tp].hi)
		}
		q := "SELECT DISTINCT src_topic, src_partition, src_offset FROM " + table + " WHERE " + cond.String()
		if err := w.readOffsets(ctx, q, args, set.exact); err != nil {
			return set, fmt.Errorf("read the offsets stored in %s: %w", table, err)
		}
	}
	return set, nil
}

func (w *writer) readOffsets(ctx context.Context, q string, args []any, into map[topicPartition]map[int64]bool) error {
	rows, err := w.conn.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var tp topicPartition
		var off int64
		if err := rows.Scan(&tp.topic, &tp.partition, &off); err != nil {
			return err
		}
		if m := into[tp]; m != nil {
			m[off] = true
		}
	}
	return rows.Err()
}

// storedOffsets reads the highest stored offset of each topic in recs.
func (w *writer) storedOffsets(ctx context.Context, recs []pipelines.Record) (map[topicPartition]int64, error) {
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

// noStrings is the value appended for an empty array of strings (boxed
// once, not per row).
var noStrings any = []string{}

// prepareColumns prepares an insert of whole columns (the fast path: no
// per-row reflection). Arrays ([][]string) are appended row by row, which
// is clickhouse-go's reflection-free path for them.
func (w *writer) prepareColumns(ctx context.Context, insert string, cols []any) (driver.Batch, error) {
	wctx, err := w.wire.context(ctx, w.conn, insert)
	if err != nil {
		return nil, err
	}
	bt, err := w.conn.PrepareBatch(wctx, insert)
	if err != nil {
		w.wire.forget(insert)
		return nil, err
	}
	rows, strBytes := columnSizes(cols)
	presize(bt.Columns(), rows, strBytes)
	for i, c := range cols {
		col := bt.Column(i)
		if rows, ok := c.([][]string); ok {
			for _, r := range rows {
				var v any = noStrings
				if len(r) > 0 {
					v = r
				}
				if err = col.AppendRow(v); err != nil {
					break
				}
			}
		} else {
			err = col.Append(c)
		}
		if err != nil {
			bt.Abort()
			w.wire.forget(insert)
			return nil, fmt.Errorf("column %d: %w", i, err)
		}
	}
	return bt, nil
}

func (w *writer) sendRows(ctx context.Context, insert string, rows []row) (err error) {
	if len(rows) == 0 {
		return nil
	}
	wctx, err := w.wire.context(ctx, w.conn, insert)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			w.wire.forget(insert)
		}
	}()
	bt, err := w.conn.PrepareBatch(wctx, insert)
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
