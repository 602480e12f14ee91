// Package pipelines is the contract between minecart's stages and the stage
// runtime (pipelines/kafka): a stage is a Processor over Records that emits
// through an Emitter (or, in sink mode, a Write over batches of Records), and
// the topology of topics they read and write. It imports no Kafka client:
// stages depend on this package only, and only mains (and the in-process
// stack) wire the runtime.
//
// The runtime consumes a stage's input topics in a consumer group, hands
// each record to the stage's Processor, produces what the processor emits
// and commits the consumed offsets, all in one Kafka transaction (exactly
// once, read_committed). Records a processor rejects go to the dead-letter
// topic with their reason; transient errors are retried with backoff.
package pipelines

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Header is one Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// Record is one consumed Kafka record as a stage sees it.
type Record struct {
	Topic     string
	Partition int32
	Offset    int64
	Key       []byte
	Value     []byte
	Headers   []Header
	Timestamp time.Time
}

// Header returns the value of the first header named key, or nil.
func (r *Record) Header(key string) []byte {
	for _, h := range r.Headers {
		if h.Key == key {
			return h.Value
		}
	}
	return nil
}

// Emitter collects the records a processor produces. Everything emitted while
// handling a record is produced in the same transaction that commits that
// record's offset; if the processor returns an error for the record, what it
// emitted for that record is discarded. The runtime keeps the key and
// value slices and the headers' Value slices until the transaction ends:
// do not modify them after the call. The headers slice itself (the Header
// values) is copied by the call: a processor may reuse it for its next
// record.
type Emitter interface {
	// Emit produces to topic, choosing the partition by key with Kafka's
	// default (murmur2) partitioner, so keys land where the Java client
	// would put them.
	Emit(topic string, key, value []byte, headers ...Header)
	// EmitTo produces to an explicit partition of topic (changelogs are
	// co-partitioned with the input partition that owns them).
	EmitTo(topic string, partition int32, key, value []byte, headers ...Header)
}

// Task names the unit of work a Processor owns: one partition number across
// all of a stage's (co-partitioned) input topics, as in Kafka Streams.
type Task struct {
	Stage     string
	Partition int32
}

// Processor handles the records of one Task, one at a time, in offset order
// within each input partition.
type Processor interface {
	// Process handles one record. Return Reject(code, err) for bad input
	// (the record goes to the dead-letter topic and processing goes on);
	// any other error is treated as transient and retried with backoff.
	// Process must not change its state before it knows it will succeed.
	Process(ctx context.Context, rec Record, out Emitter) error
}

// Restorer is implemented by processors whose Stage has a Changelog: before
// the first Process call of a task, the runtime replays the task's changelog
// partition (read_committed, from the start to the end) through Restore.
type Restorer interface {
	Restore(ctx context.Context, rec Record) error
}

// Ticker is implemented by processors that act on time (closing idle
// windows). Tick is called every Stage.TickEvery inside a transaction; what it
// emits is produced atomically with the offsets consumed so far.
type Ticker interface {
	Tick(ctx context.Context, now time.Time, out Emitter) error
}

// Flusher is implemented by processors that do work once per transaction:
// Flush is called before every commit, after the batch's records were
// processed and after a tick, so a Ticker may leave its output to Flush.
type Flusher interface {
	Flush(ctx context.Context, out Emitter) error
}

// Committer is implemented by processors that reuse the memory their
// output points to. Committed is called on the poll loop's goroutine
// after the transaction has committed, for every task's processor: the
// producer has then finished with every record emitted in it (each was
// acknowledged before the commit), so the bytes of their keys and values
// may be overwritten. A processor that gave out memory since the last
// commit must not reuse it before Committed; after an aborted
// transaction Committed is not called and the processor is closed (its
// memory is left to the collector).
type Committer interface {
	Committed()
}

// Release hands what out has collected so far to the producer now, if out
// can (the runtime's Emitter during Flush), instead of when the call
// returns; elsewhere it does nothing. A Flush that makes many records
// (the ledger's release of a day's credits) so overlaps their produce with
// its own work. Records keep their order. What was released cannot be
// dropped: a Flush that fails afterwards fails the transaction, which is
// what any failing Flush does.
func Release(out Emitter) {
	if r, ok := out.(interface{ Release() }); ok {
		r.Release()
	}
}

// Stage declares one stage of the pipeline for Run.
type Stage struct {
	// Name is the stage's name: the consumer group, the transactional id
	// prefix and the "stage" label of its metrics.
	Name string
	// Inputs are the topics consumed, co-partitioned: partition p of each
	// input belongs to Task p.
	Inputs []string
	// Changelog is the compacted topic holding the stage's state, if any:
	// partition p belongs to Task p and is replayed through Restorer.
	Changelog string
	// NewProcessor makes the processor of a task when its partitions are
	// assigned. It is closed (if it implements io.Closer) when they are
	// revoked.
	NewProcessor func(ctx context.Context, t Task) (Processor, error)
	// TickEvery is how often Ticker processors are ticked (0: never).
	TickEvery time.Duration
	// Parallel lets the runtime process the records of different tasks
	// of one batch at the same time, on up to GOMAXPROCS goroutines: each
	// processor still handles its task's records one at a time, in offset
	// order, and Restore, Tick and Flush still run one task after the
	// other. Set it only when the processors of different tasks share no
	// unsynchronised state. Records that processors of different tasks
	// emit to one output partition may then interleave in any order
	// within the transaction (each task's own stay in order).
	Parallel bool
}

// Validate reports whether the stage declaration is usable.
func (st Stage) Validate() error {
	if st.Name == "" || len(st.Inputs) == 0 || st.NewProcessor == nil {
		return errors.New("pipelines: stage needs Name, Inputs and NewProcessor")
	}
	if st.TickEvery < 0 {
		return fmt.Errorf("stage %s: negative TickEvery", st.Name)
	}
	return nil
}

// SinkStage declares an at-least-once sink (pipelines/kafka.RunSink):
// records are handed to Write in batches, and their offsets are committed
// only after Write returned nil and the records it rejected were
// dead-lettered.
type SinkStage struct {
	// Name is the consumer group and the "stage" label of the metrics.
	Name string
	// Inputs are the topics consumed.
	Inputs []string
	// MaxRows is the most records per Write (default 10000).
	MaxRows int
	// MaxWait is the longest a record waits in the buffer before Write
	// (default 1s).
	MaxWait time.Duration
	// Write stores a batch. It is retried with backoff, with the same
	// records (and possibly records appended), until it returns a nil
	// error: it must be idempotent enough for at-least-once delivery (a
	// batch written just before a crash or a rebalance is written again).
	// Records it cannot store (undecodable bytes) are returned as Rejected,
	// never as an error (an error for one bad record would retry the batch
	// forever); the runtime dead-letters them before it commits. A batch
	// written again must reject its bad records again, also those it skips
	// as already stored, so that a crash between the write and the dead
	// letters loses none.
	Write func(ctx context.Context, recs []Record) ([]Rejected, error)
}

// Rejected is a record a sink could not store, with its reason: the
// runtime writes it to the dead-letter topic with Code.
type Rejected struct {
	Record Record
	Code   string
	Err    error
}

// RejectError marks a record as bad input: it is dead-lettered with Code.
type RejectError struct {
	Code string // machine-readable reason, e.g. "decode", "speed_out_of_range"
	Err  error
}

func (e *RejectError) Error() string { return fmt.Sprintf("%s: %v", e.Code, e.Err) }
func (e *RejectError) Unwrap() error { return e.Err }

// Reject returns an error that dead-letters the record with code.
func Reject(code string, err error) error { return &RejectError{Code: code, Err: err} }

// RejectCode reports the reason code of a reject error anywhere in err's chain.
func RejectCode(err error) (string, bool) {
	var re *RejectError
	if errors.As(err, &re) {
		return re.Code, true
	}
	return "", false
}

// Sleep waits d or until ctx is done (then it returns ctx.Err()): the one
// context-aware wait of minecart's retry loops.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
