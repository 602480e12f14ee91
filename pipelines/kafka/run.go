package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/minecart/minecart/pipelines"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/schemas/avro"
)

// CodeRetriesExhausted is the dead-letter code of a record that kept failing
// with a transient (non-reject) error after Config.MaxRetries retries. The
// record is dead-lettered rather than retried forever so that one poisoned
// record never blocks its partition; it is logged at error level and
// counted, and can be replayed from the dead-letter topic once the cause is
// fixed.
const CodeRetriesExhausted = "retries_exhausted"

// Run runs st until ctx is done: it consumes st.Inputs in the consumer
// group st.Name and, for every polled batch (at most Config.MaxBatch
// records), calls the task processors, produces what they emit plus any
// dead letters, and commits the batch's offsets in one Kafka transaction
// (KIP-447: a rebalance during the batch aborts it; a zombie instance's
// offset commit is refused by the group generation check). An aborted batch
// is consumed again and, since processors may have changed their in-memory
// state for it, every processor is rebuilt (and restored from the
// changelog) first.
//
// When ctx is cancelled, Run finishes the in-flight batch and commits it
// (within Config.ShutdownTimeout, else aborts), closes the processors and
// leaves the group; it then returns nil. It returns an error only for a bad
// configuration; failures of the Kafka session are logged and the session
// is rebuilt with backoff.
func Run(ctx context.Context, cfg Config, st pipelines.Stage) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if err := st.Validate(); err != nil {
		return err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("stage", st.Name)
	if err := checkCopartitioned(ctx, cfg, st); err != nil {
		return err
	}
	m := newMetrics(cfg.Registerer)
	for attempt := 0; ; attempt++ {
		r := &runner{cfg: cfg, st: st, log: log, m: m, tasks: map[int32]*task{}, owned: map[int32]int{}, drop: map[int32]bool{}}
		err := r.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, kerr.FencedInstanceID) {
			// Another live process joined the group under this
			// instance id (static membership): rejoining would fence
			// it in turn, forever. Refuse, loudly.
			return fmt.Errorf("stage %s: instance id %q is in use by another live process (the broker fenced this one): give every replica its own instance id: %w",
				st.Name, cfg.InstanceID, err)
		}
		d := cfg.backoff(min(attempt, 10))
		log.Error("stage session failed; restarting", "err", err, "in", d)
		if pipelines.Sleep(ctx, d) != nil {
			return nil
		}
		if err == nil {
			attempt = -1
		}
	}
}

// checkCopartitioned verifies that every input has the same partition count
// (a Task owns partition p of each), that the changelog has at least as
// many, and that the dead-letter topic exists.
func checkCopartitioned(ctx context.Context, cfg Config, st pipelines.Stage) error {
	cl, err := kgo.NewClient(cfg.baseOpts()...)
	if err != nil {
		return fmt.Errorf("stage %s: %w", st.Name, err)
	}
	defer cl.Close()
	topics := append([]string{}, st.Inputs...)
	if st.Changelog != "" {
		topics = append(topics, st.Changelog)
	}
	tds, err := kadm.NewClient(cl).ListTopics(ctx, append(topics, cfg.DeadLetterTopic)...)
	if err != nil {
		return fmt.Errorf("stage %s: list topics: %w", st.Name, err)
	}
	if d, ok := tds[cfg.DeadLetterTopic]; !ok || d.Err != nil {
		return fmt.Errorf("stage %s: dead-letter topic %s missing (EnsureTopics first)", st.Name, cfg.DeadLetterTopic)
	}
	n := -1
	for _, t := range topics {
		d, ok := tds[t]
		if !ok || d.Err != nil {
			return fmt.Errorf("stage %s: topic %s missing (EnsureTopics first)", st.Name, t)
		}
		if t == st.Changelog {
			if len(d.Partitions) < n {
				return fmt.Errorf("stage %s: changelog %s has %d partitions, inputs %d", st.Name, t, len(d.Partitions), n)
			}
			continue
		}
		if n >= 0 && len(d.Partitions) != n {
			return fmt.Errorf("stage %s: inputs are not co-partitioned (%s has %d partitions, not %d)", st.Name, t, len(d.Partitions), n)
		}
		n = len(d.Partitions)
	}
	return nil
}

type task struct {
	id      pipelines.Task
	proc    pipelines.Processor
	ticker  pipelines.Ticker
	flusher pipelines.Flusher

	// Stateful stages only (a changelog), per input topic of partition
	// id.Partition: applied is the next offset to process according to the
	// state (the restored applied-offset records, then each commit's);
	// records below it are already in the state and are skipped. pending
	// is what the open transaction writes; checked marks the topics whose
	// first polled record was compared with applied since the restore.
	applied map[string]int64
	pending map[string]int64
	checked map[string]bool
}

// runner is one group session of a stage: one client, its tasks.
type runner struct {
	cfg Config
	st  pipelines.Stage
	log *slog.Logger
	m   *metrics

	ctx     context.Context // the session's: given to NewProcessor and Restore
	sess    *kgo.GroupTransactSession
	restore *Reader // changelog reader, made on first use
	tasks   map[int32]*task

	mu    sync.Mutex     // guards owned and drop, written by group callbacks
	owned map[int32]int  // task -> number of its input partitions assigned
	drop  map[int32]bool // tasks revoked or lost since the last sync

	w        worker    // the poll loop's own: records, ticks, flushes
	pool     []*worker // Stage.Parallel: one per goroutine, made on first use
	parallel int       // Stage.Parallel: most tasks processed at once
	prodMu   sync.Mutex
	prodErr  error
	promise  func(*kgo.Record, error)
	lag      map[string]map[int32]prometheus.Gauge
	nextTick time.Time
	failures int // consecutive aborted batches
	started  time.Time
	firstTxn bool // a transaction committed in this session
}

// processStart is when the process started (this package's init), for
// the "first transaction committed" log: the time from a (re)start to a
// stage's first commit (docs/reliability.md).
var processStart = time.Now()

func (r *runner) session(ctx context.Context) error {
	r.started = time.Now()
	txnID := r.st.Name + "-" + r.cfg.InstanceID
	hb := max(r.cfg.SessionTimeout/4, 50*time.Millisecond)
	opts := append(r.cfg.baseOpts(),
		kgo.ConsumerGroup(r.st.Name),
		kgo.ConsumeTopics(r.st.Inputs...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.Balancers(kgo.RangeBalancer()), // partition p of every input to one member
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(fetchWait),
		kgo.SessionTimeout(r.cfg.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(r.cfg.TransactionTimeout),
		kgo.RecordPartitioner(newPartitioner()),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onRevoked),
	)
	if !r.cfg.madeUpID {
		// Static membership (KIP-345): a restarted instance takes its
		// predecessor's place and partitions at once, without waiting
		// for the predecessor's session to time out.
		opts = append(opts, kgo.InstanceID(r.cfg.InstanceID))
	}
	// Initialise the transactional id before joining the group: under a
	// stable transactional id this fences a crashed predecessor and
	// aborts its open transaction at once, so neither the group's offset
	// fetch (KIP-447: unstable while the predecessor's offsets are
	// pending) nor the restore of the changelog (Reader.End) waits for
	// its transaction timeout.
	if err := r.fence(ctx, txnID); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	r.sess = sess
	r.ctx = ctx
	r.promise = r.onProduced
	r.lag = map[string]map[int32]prometheus.Gauge{}
	r.w.dead = map[string]int{}
	if r.st.Parallel {
		r.parallel = runtime.GOMAXPROCS(0)
	}
	r.log.Info("stage session started", "txn_id", txnID, "inputs", r.st.Inputs)
	defer func() {
		r.closeTasks()
		sess.Close() // leaves the group
		if r.restore != nil {
			r.restore.Close()
		}
	}()
	if r.st.TickEvery > 0 {
		r.nextTick = time.Now().Add(r.st.TickEvery)
	}
	for {
		if ctx.Err() != nil {
			return nil
		}
		fs := r.poll(ctx)
		if ctx.Err() != nil && fs.NumRecords() == 0 {
			return nil
		}
		if err := r.fetchErr(fs); err != nil {
			return err
		}
		// Once polled, the batch is finished even if ctx is cancelled
		// meanwhile: wctx outlives ctx by at most ShutdownTimeout.
		wctx, cancel := workCtx(ctx, r.cfg.ShutdownTimeout)
		err := r.batch(wctx, fs)
		cancel()
		if err != nil {
			return err
		}
	}
}

// fence initialises the producer id of txnID (InitProducerID), which
// aborts a transaction its previous holder left open, with a client of its
// own that joins no group.
func (r *runner) fence(ctx context.Context, txnID string) error {
	cl, err := kgo.NewClient(append(r.cfg.baseOpts(),
		kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(r.cfg.TransactionTimeout),
	)...)
	if err != nil {
		return fmt.Errorf("fence %s: %w", txnID, err)
	}
	defer cl.Close()
	if _, _, err := cl.ProducerID(ctx); err != nil {
		return fmt.Errorf("fence %s: init producer id: %w", txnID, err)
	}
	return nil
}

// workCtx is ctx without its cancellation, cancelled ShutdownTimeout after
// ctx is.
func workCtx(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() {
		t := time.AfterFunc(grace, cancel)
		context.AfterFunc(wctx, func() { t.Stop() })
	})
	return wctx, func() { stop(); cancel() }
}

func (r *runner) poll(ctx context.Context) kgo.Fetches {
	if r.nextTick.IsZero() {
		return r.sess.PollRecords(ctx, r.cfg.MaxBatch)
	}
	if !time.Now().Before(r.nextTick) {
		// A tick is due: take what is buffered without waiting (a nil
		// context drains; an expired one would return nothing).
		//lint:ignore SA1012 kgo documents a nil context as its non-blocking poll
		return r.sess.PollRecords(nil, r.cfg.MaxBatch)
	}
	pctx, cancel := context.WithDeadline(ctx, r.nextTick)
	defer cancel()
	return r.sess.PollRecords(pctx, r.cfg.MaxBatch)
}

func (r *runner) fetchErr(fs kgo.Fetches) error {
	var fatal error
	fs.EachError(func(topic string, p int32, err error) {
		switch {
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		case errors.Is(err, kgo.ErrClientClosed), errors.Is(err, kerr.FencedInstanceID):
			fatal = err
		default:
			r.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		}
	})
	return fatal
}

// batch processes one polled batch in one transaction.
func (r *runner) batch(ctx context.Context, fs kgo.Fetches) error {
	start := time.Now()
	var fetched []int32
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			fetched = append(fetched, p.Partition)
		}
	})
	// Processors live as long as the session: they get its context, not
	// this batch's.
	if err := r.syncTasks(r.ctx, fetched); err != nil {
		return err
	}
	tick := !r.nextTick.IsZero() && !time.Now().Before(r.nextTick)
	n := fs.NumRecords()
	if n == 0 && !tick {
		return nil
	}
	if err := r.sess.Begin(); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	r.w.reset()
	var oldest time.Time
	var runs []taskRun
	fs.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) == 0 {
			return
		}
		if ts := p.Records[0].Timestamp; oldest.IsZero() || ts.Before(oldest) {
			oldest = ts
		}
		r.setLag(p)
		t := r.tasks[p.Partition]
		runs = append(runs, taskRun{t: t, recs: r.unapplied(t, p)})
	})
	perr := r.processRuns(ctx, runs)
	if perr == nil && tick {
		r.tick(ctx)
		r.nextTick = time.Now().Add(r.st.TickEvery)
	}
	if perr == nil {
		// Before every commit, records or a tick alone: a Ticker may leave
		// its output to Flush (scoring closes idle days that way).
		perr = r.flush(ctx)
	}
	if perr == nil {
		r.writeApplied(ctx)
	}
	if perr == nil && n == 0 && r.w.produced == 0 {
		// A tick (and flush) that emitted nothing: nothing to commit.
		if _, err := r.sess.End(ctx, kgo.TryAbort); err != nil {
			return fmt.Errorf("end empty transaction: %w", err)
		}
		return nil
	}
	commit := perr == nil
	if commit {
		if err := r.sess.Client().Flush(ctx); err != nil {
			perr = fmt.Errorf("flush produce: %w", err)
			commit = false
		}
	}
	r.prodMu.Lock()
	if r.prodErr != nil {
		perr, commit = fmt.Errorf("produce: %w", r.prodErr), false
		r.prodErr = nil
	}
	r.prodMu.Unlock()
	committed, err := r.sess.End(ctx, kgo.TransactionEndTry(commit))
	// Records of an aborted transaction fail with "aborting" while End
	// aborts them (End waits for them): those errors belong to this batch,
	// not to the next one, which would otherwise abort in turn, forever.
	r.prodMu.Lock()
	r.prodErr = nil
	r.prodMu.Unlock()
	if committed {
		for _, t := range r.tasks {
			for topic, next := range t.pending {
				t.applied[topic] = next
			}
			clear(t.pending)
			if c, ok := t.proc.(pipelines.Committer); ok {
				c.Committed() // the producer holds none of the transaction's records
			}
		}
		if !r.firstTxn {
			r.firstTxn = true
			r.log.Info("first transaction committed", "since_session_start", time.Since(r.started).Round(time.Millisecond),
				"since_process_start", time.Since(processStart).Round(time.Millisecond))
		}
		r.m.txns.WithLabelValues(r.st.Name, "committed").Inc()
		r.m.recordsIn.WithLabelValues(r.st.Name).Add(float64(n))
		r.m.recordsOut.WithLabelValues(r.st.Name).Add(float64(r.w.produced))
		for code, c := range r.w.dead {
			r.m.dead.WithLabelValues(r.st.Name, code).Add(float64(c))
		}
		r.m.batch.WithLabelValues(r.st.Name).Observe(time.Since(start).Seconds())
		if !oldest.IsZero() {
			r.m.age.WithLabelValues(r.st.Name).Observe(max(time.Since(oldest).Seconds(), 0))
		}
	} else {
		r.m.txns.WithLabelValues(r.st.Name, "aborted").Inc()
		// Processors may hold state from the aborted batch: rebuild them
		// from the changelog before the batch is consumed again.
		r.closeTasks()
		if perr == nil && err == nil {
			r.log.Info("transaction aborted (rebalance); batch will be consumed again", "records", n)
		}
	}
	if err != nil {
		return fmt.Errorf("end transaction: %w", err)
	}
	if perr == nil {
		r.failures = 0
		return nil
	}
	// The batch is consumed again after a growing pause: a processor or
	// output that keeps failing this way (Flush errors, an output topic
	// that does not exist) stops the stage loudly rather than losing data.
	d := r.cfg.backoff(min(r.failures, 10))
	r.failures++
	r.log.Error("batch aborted", "records", n, "err", perr, "retry_in", d)
	_ = pipelines.Sleep(ctx, d)
	return nil
}

// taskRun is the records of one fetched input partition that its task
// processes in this batch.
type taskRun struct {
	t    *task
	recs []*kgo.Record
}

// worker is what processing records needs of its own: the emitter, the
// consumed records' header slab and the open transaction's counts. The
// poll loop has one (runner.w); Stage.Parallel adds one per goroutine.
type worker struct {
	em       emitter
	in       inHeaders
	produced int            // records produced in the open transaction
	dead     map[string]int // records dead-lettered in it, by code
}

func (w *worker) reset() {
	w.produced = 0
	clear(w.dead)
}

// processRuns processes the batch's runs: one after the other on the poll
// loop's goroutine or, for a Stage.Parallel stage with several tasks in
// the batch, the runs of different tasks on up to GOMAXPROCS goroutines
// at once (the runs of one task, one per input topic, on one goroutine in
// fetch order, so a processor still sees one record at a time). It returns
// the first error; the batch is then aborted, whatever the other
// goroutines did.
func (r *runner) processRuns(ctx context.Context, runs []taskRun) error {
	var groups [][]taskRun // by task, in order of first appearance
	if r.parallel > 1 && len(runs) > 1 {
		at := map[*task]int{}
		for _, run := range runs {
			i, ok := at[run.t]
			if !ok {
				i = len(groups)
				at[run.t] = i
				groups = append(groups, nil)
			}
			groups[i] = append(groups[i], run)
		}
	}
	if len(groups) < 2 {
		for _, run := range runs {
			for _, kr := range run.recs {
				if err := r.process(ctx, &r.w, run.t, kr); err != nil {
					return err
				}
			}
		}
		return nil
	}
	n := min(r.parallel, len(groups))
	for len(r.pool) < n {
		r.pool = append(r.pool, &worker{dead: map[string]int{}})
	}
	var (
		next atomic.Int64
		wg   sync.WaitGroup
		errs = make([]error, n)
	)
	for i := range n {
		w := r.pool[i]
		w.reset()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for g := int(next.Add(1)) - 1; g < len(groups); g = int(next.Add(1)) - 1 {
				for _, run := range groups[g] {
					for _, kr := range run.recs {
						if errs[i] = r.process(ctx, w, run.t, kr); errs[i] != nil {
							return
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, w := range r.pool[:n] {
		r.w.produced += w.produced
		for code, c := range w.dead {
			r.w.dead[code] += c
		}
	}
	return errors.Join(errs...)
}

// process runs one record through its task, retrying transient errors and
// dead-lettering rejects.
func (r *runner) process(ctx context.Context, w *worker, t *task, kr *kgo.Record) error {
	rec := w.in.record(kr)
	for attempt := 0; ; attempt++ {
		w.em.reset()
		err := safeProcess(ctx, t.proc, rec, &w.em)
		if err == nil {
			for _, out := range w.em.recs {
				r.produce(ctx, w, out)
			}
			return nil
		}
		if code, ok := pipelines.RejectCode(err); ok {
			return r.deadLetter(ctx, w, rec, code, err)
		}
		if attempt >= r.cfg.MaxRetries {
			r.log.Error("record failed after retries; dead-lettered", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "retries", attempt, "err", err)
			return r.deadLetter(ctx, w, rec, CodeRetriesExhausted, err)
		}
		r.m.retries.WithLabelValues(r.st.Name).Inc()
		r.log.Warn("record failed; retrying", "topic", rec.Topic, "partition", rec.Partition,
			"offset", rec.Offset, "attempt", attempt+1, "err", err)
		if err := pipelines.Sleep(ctx, r.cfg.backoff(attempt)); err != nil {
			return fmt.Errorf("retry: %w", err)
		}
	}
}

func safeProcess(ctx context.Context, p pipelines.Processor, rec pipelines.Record, out pipelines.Emitter) error {
	return safely(func() error { return p.Process(ctx, rec, out) })
}

// safely runs fn, turning a panic into an error so that a bad record or a
// processor bug never crashes the stage (the record is retried, then
// dead-lettered).
func safely(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("processor panic: %v\n%s", v, debug.Stack())
		}
	}()
	return fn()
}

func (r *runner) produce(ctx context.Context, w *worker, rec *kgo.Record) {
	w.produced++
	r.sess.Produce(ctx, rec, r.promise)
}

func (r *runner) onProduced(rec *kgo.Record, err error) {
	if err == nil || errors.Is(err, kgo.ErrAborting) {
		// ErrAborting: a record of a transaction this runner is aborting
		// itself; not a failure of the batch now open.
		return
	}
	r.prodMu.Lock()
	if r.prodErr == nil {
		r.prodErr = fmt.Errorf("topic %s: %w", rec.Topic, err)
	}
	r.prodMu.Unlock()
}

// deadLetter produces rec to the dead-letter topic, in the transaction.
func (r *runner) deadLetter(ctx context.Context, w *worker, rec pipelines.Record, code string, cause error) error {
	dl, err := deadLetterRecord(r.cfg, r.st.Name, rec, code, cause)
	if err != nil {
		return err
	}
	r.sess.Produce(ctx, dl, r.promise)
	w.dead[code]++
	r.log.Debug("record dead-lettered", "code", code, "topic", rec.Topic, "partition", rec.Partition, "offset", rec.Offset, "err", cause)
	return nil
}

// deadLetterRecord is the dead-letter record of rec (a schemas.DeadLetter,
// headers stage and code), in processor and sink mode alike.
func deadLetterRecord(cfg Config, stage string, rec pipelines.Record, code string, cause error) (*kgo.Record, error) {
	value := rec.Value
	if value == nil {
		value = []byte{}
	}
	b, err := cfg.Serde.Marshal(&avro.DeadLetter{
		Stage:           stage,
		ReasonCode:      code,
		Error:           cause.Error(),
		SourceTopic:     rec.Topic,
		SourcePartition: rec.Partition,
		SourceOffset:    rec.Offset,
		Key:             rec.Key,
		Value:           value,
		Time:            cfg.Now().UTC(),
	})
	if err != nil {
		return nil, fmt.Errorf("encode dead letter: %w", err)
	}
	return &kgo.Record{
		Topic: cfg.DeadLetterTopic,
		Key:   rec.Key,
		Value: b,
		Headers: []kgo.RecordHeader{
			{Key: "stage", Value: []byte(stage)},
			{Key: "code", Value: []byte(code)},
		},
	}, nil
}

func (r *runner) tick(ctx context.Context) {
	now := r.cfg.Now()
	for _, p := range r.taskOrder() {
		t := r.tasks[p]
		if t.ticker == nil {
			continue
		}
		r.w.em.reset()
		if err := safely(func() error { return t.ticker.Tick(ctx, now, &r.w.em) }); err != nil {
			r.log.Error("tick failed; its output is dropped", "partition", p, "err", err)
			continue
		}
		for _, out := range r.w.em.recs {
			r.produce(ctx, &r.w, out)
		}
	}
}

func (r *runner) flush(ctx context.Context) error {
	for _, p := range r.taskOrder() {
		t := r.tasks[p]
		if t.flusher == nil {
			continue
		}
		r.w.em.reset()
		// A failing Flush fails the transaction, so what it released
		// (pipelines.Release) may go out before it returns.
		r.w.em.stream = func(rec *kgo.Record) { r.produce(ctx, &r.w, rec) }
		err := safely(func() error { return t.flusher.Flush(ctx, &r.w.em) })
		r.w.em.stream = nil
		if err != nil {
			return fmt.Errorf("flush task %d: %w", p, err)
		}
		for _, out := range r.w.em.recs {
			r.produce(ctx, &r.w, out)
		}
	}
	return nil
}

// unapplied returns the records of p that t must process: for a stateful
// stage, those at or past the next offset its state says it has applied
// (its changelog's applied-offset record, docs/reliability.md "Applied
// offsets in the changelog"). Records below it were processed by a
// transaction whose outputs and changelog committed while the group
// offsets did not (a broker that crashed between the two, or a group
// rolled back): they are already in the state and in the outputs, and
// are skipped, not processed twice. It also notes, for writeApplied, the
// next offset the open transaction applies.
func (r *runner) unapplied(t *task, p kgo.FetchTopicPartition) []*kgo.Record {
	recs := p.Records
	if t.applied == nil { // no changelog
		return recs
	}
	next, ok := t.applied[p.Topic]
	if ok && recs[0].Offset < next {
		i := sort.Search(len(recs), func(i int) bool { return recs[i].Offset >= next })
		if !t.checked[p.Topic] {
			// The group's committed offset (where the consumer
			// started) is behind the state: repaired here.
			r.m.repaired.WithLabelValues(r.st.Name, p.Topic).Inc()
			r.log.Warn("input offsets repaired from the changelog: records already applied are skipped",
				"topic", p.Topic, "partition", p.Partition, "consumed_from", recs[0].Offset, "applied", next, "skipped_now", i)
		}
		recs = recs[i:]
	}
	t.checked[p.Topic] = true
	t.pending[p.Topic] = max(next, p.Records[len(p.Records)-1].Offset+1)
	return recs
}

// writeApplied produces, in the open transaction, the applied-offset record
// of every input partition the transaction consumed to the changelog
// partition of its task.
func (r *runner) writeApplied(ctx context.Context) {
	for _, p := range r.taskOrder() {
		t := r.tasks[p]
		topics := make([]string, 0, len(t.pending))
		for topic := range t.pending {
			topics = append(topics, topic)
		}
		sort.Strings(topics)
		for _, topic := range topics {
			r.sess.Produce(ctx, &kgo.Record{
				Topic: r.st.Changelog, Partition: p, Context: explicitPartition,
				Key: appliedKey(topic, p), Value: appliedValue(t.pending[topic]),
			}, r.promise)
		}
	}
}

func (r *runner) taskOrder() []int32 {
	ps := make([]int32, 0, len(r.tasks))
	for p := range r.tasks {
		ps = append(ps, p)
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i] < ps[j] })
	return ps
}

func (r *runner) setLag(p kgo.FetchTopicPartition) {
	last := p.Records[len(p.Records)-1]
	byP := r.lag[p.Topic]
	if byP == nil {
		byP = map[int32]prometheus.Gauge{}
		r.lag[p.Topic] = byP
	}
	g := byP[p.Partition]
	if g == nil {
		g = r.m.lag.WithLabelValues(r.st.Name, p.Topic, strconv.Itoa(int(p.Partition)))
		byP[p.Partition] = g
	}
	g.Set(float64(max(p.HighWatermark-last.Offset-1, 0)))
}

// Group callbacks: they run on the client's goroutines, so they only
// record what changed; the poll loop applies it in syncTasks.

func (r *runner) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ps := range assigned {
		for _, p := range ps {
			r.owned[p]++
		}
	}
}

func (r *runner) onRevoked(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ps := range revoked {
		for _, p := range ps {
			if r.owned[p]--; r.owned[p] <= 0 {
				delete(r.owned, p)
			}
			r.drop[p] = true
		}
	}
}

// syncTasks closes the processors of revoked tasks and creates (and
// restores) those of newly assigned ones.
func (r *runner) syncTasks(ctx context.Context, fetched []int32) error {
	r.mu.Lock()
	want := fetched // the client only returns records of assigned partitions
	for p := range r.owned {
		want = append(want, p)
	}
	drop := r.drop
	r.drop = map[int32]bool{}
	r.mu.Unlock()
	for p := range drop {
		r.closeTask(p)
	}
	sort.Slice(want, func(i, j int) bool { return want[i] < want[j] })
	for _, p := range want {
		if r.tasks[p] != nil {
			continue
		}
		t, err := r.newTask(ctx, p)
		if err != nil {
			return err
		}
		r.tasks[p] = t
	}
	return nil
}

func (r *runner) newTask(ctx context.Context, p int32) (*task, error) {
	id := pipelines.Task{Stage: r.st.Name, Partition: p}
	proc, err := r.st.NewProcessor(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("new processor %d: %w", p, err)
	}
	t := &task{id: id, proc: proc}
	t.ticker, _ = proc.(pipelines.Ticker)
	t.flusher, _ = proc.(pipelines.Flusher)
	if r.st.Changelog != "" {
		rs, ok := proc.(pipelines.Restorer)
		if !ok {
			closeProc(proc)
			return nil, fmt.Errorf("stage %s has a changelog but its processor is not a pipelines.Restorer", r.st.Name)
		}
		start := time.Now()
		n, applied, err := r.restoreTask(ctx, p, rs)
		if err != nil {
			closeProc(proc)
			return nil, fmt.Errorf("restore task %d: %w", p, err)
		}
		t.applied, t.pending, t.checked = applied, map[string]int64{}, map[string]bool{}
		d := time.Since(start)
		r.m.restore.WithLabelValues(r.st.Name).Observe(d.Seconds())
		r.log.Info("task restored", "partition", p, "records", n, "applied", applied, "took", d)
	}
	return t, nil
}

func (r *runner) closeTask(p int32) {
	t := r.tasks[p]
	if t == nil {
		return
	}
	delete(r.tasks, p)
	for topic, byP := range r.lag {
		if _, ok := byP[p]; ok {
			delete(byP, p)
			r.m.lag.DeleteLabelValues(r.st.Name, topic, strconv.Itoa(int(p)))
		}
	}
	if err := closeProc(t.proc); err != nil {
		r.log.Warn("close processor", "partition", p, "err", err)
	}
}

func (r *runner) closeTasks() {
	for p := range r.tasks {
		r.closeTask(p)
	}
}

func closeProc(p pipelines.Processor) error {
	if c, ok := p.(io.Closer); ok {
		return c.Close()
	}
	return nil
}
