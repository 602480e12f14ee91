package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/minecart/minecart/pipelines"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// RunSink runs st until ctx is done. While Write fails, fetching is paused
// (Kafka is the buffer) and the batch is retried with backoff; offsets are
// committed after each successful Write. On rebalance, buffered records of
// revoked partitions are dropped unwritten (their new owner reads them from
// the committed offset). When ctx is cancelled, the buffer is written and
// committed once more (within Config.ShutdownTimeout) and the group is left.
// It returns nil after ctx is done, or an error for a bad configuration.
func RunSink(ctx context.Context, cfg Config, st pipelines.SinkStage) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if st.Name == "" || len(st.Inputs) == 0 || st.Write == nil {
		return errors.New("pipelines: sink needs Name, Inputs and Write")
	}
	if st.MaxRows <= 0 {
		st.MaxRows = 10000
	}
	if st.MaxWait <= 0 {
		st.MaxWait = time.Second
	}
	cfg = cfg.withDefaults()
	s := &sink{cfg: cfg, st: st, log: cfg.Logger.With("stage", st.Name), m: newMetrics(cfg.Registerer),
		offsets: map[string]map[int32]kgo.EpochOffset{}}
	hb := max(cfg.SessionTimeout/4, 50*time.Millisecond)
	opts := cfg.baseOpts()
	if !cfg.madeUpID {
		// Static membership, as the transactional stages (run.go): a
		// restarted sink takes its predecessor's place at once, and a
		// member whose JoinGroup timed out rejoins as itself.
		opts = append(opts, kgo.InstanceID(cfg.InstanceID))
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.ConsumerGroup(st.Name),
		kgo.ConsumeTopics(st.Inputs...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.FetchMaxWait(fetchWait),
		kgo.DisableAutoCommit(),
		// Group callbacks run only between our polls (after
		// AllowRebalance), never while we hold records we have not
		// accounted for: a revoke drops exactly the buffered records of
		// the revoked partitions, never ones of a later assignment.
		kgo.BlockRebalanceOnPoll(),
		kgo.SessionTimeout(cfg.SessionTimeout),
		kgo.HeartbeatInterval(hb),
		kgo.OnPartitionsRevoked(s.onRevoked),
		kgo.OnPartitionsLost(s.onRevoked),
	)...)
	if err != nil {
		return fmt.Errorf("sink %s: %w", st.Name, err)
	}
	s.cl = cl
	defer cl.Close()
	s.run(ctx)
	return nil
}

type sink struct {
	cfg Config
	st  pipelines.SinkStage
	log *slog.Logger
	m   *metrics
	cl  *kgo.Client

	mu       sync.Mutex // guards buf and offsets against the revoke callback
	buf      []pipelines.Record
	offsets  map[string]map[int32]kgo.EpochOffset // next offset per buffered partition
	deadline time.Time                            // when the oldest buffered record must be written
}

// onRevoked drops the buffered records of revoked (or lost) partitions:
// they were not committed, their next owner reads them again.
func (s *sink) onRevoked(_ context.Context, _ *kgo.Client, rev map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gone := func(r *pipelines.Record) bool {
		for _, p := range rev[r.Topic] {
			if p == r.Partition {
				return true
			}
		}
		return false
	}
	// A new slice: a Write in progress may be reading the old one.
	kept := make([]pipelines.Record, 0, len(s.buf))
	for i := range s.buf {
		if !gone(&s.buf[i]) {
			kept = append(kept, s.buf[i])
		}
	}
	s.buf = kept
	for t, ps := range rev {
		for _, p := range ps {
			delete(s.offsets[t], p)
		}
	}
}

func (s *sink) buffered() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.buf)
}

func (s *sink) run(ctx context.Context) {
	for ctx.Err() == nil {
		n := s.buffered()
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if n > 0 {
			pctx, cancel = context.WithDeadline(ctx, s.deadline)
		}
		fs := s.cl.PollRecords(pctx, s.st.MaxRows-n)
		cancel()
		fs.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, kgo.ErrClientClosed) {
				s.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		s.mu.Lock()
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			if len(s.buf) == 0 {
				s.deadline = time.Now().Add(s.st.MaxWait)
			}
			for _, r := range p.Records {
				s.buf = append(s.buf, fromKgo(r))
			}
			last := p.Records[len(p.Records)-1]
			if s.offsets[p.Topic] == nil {
				s.offsets[p.Topic] = map[int32]kgo.EpochOffset{}
			}
			s.offsets[p.Topic][p.Partition] = kgo.EpochOffset{Epoch: last.LeaderEpoch, Offset: last.Offset + 1}
			s.m.recordsIn.WithLabelValues(s.st.Name).Add(float64(len(p.Records)))
			s.m.lag.WithLabelValues(s.st.Name, p.Topic, itoa(p.Partition)).Set(float64(max(p.HighWatermark-last.Offset-1, 0)))
		})
		n = len(s.buf)
		s.mu.Unlock()
		if n > 0 && (n >= s.st.MaxRows || !time.Now().Before(s.deadline) || ctx.Err() != nil) {
			s.writeAndCommit(ctx)
		}
		s.cl.AllowRebalance()
	}
}

// writeAndCommit writes the buffer, retrying with fetching paused, then
// produces the dead letters of the records the successful Write rejected
// (retrying that produce alone the same way: the Write is not repeated),
// then commits the buffer's offsets. Between retries rebalances may proceed
// (revoked partitions leave the buffer, and their rejected records the
// dead letters to produce). If ctx ends while Write or the dead letters
// fail, the buffer is dropped uncommitted: it is read again on the next
// start. A Write in progress when ctx ends gets Config.ShutdownTimeout to
// finish.
func (s *sink) writeAndCommit(ctx context.Context) {
	wctx, cancel := workCtx(ctx, s.cfg.ShutdownTimeout)
	defer cancel()
	paused := false
	defer func() {
		if paused {
			s.cl.ResumeFetchTopics(s.st.Inputs...)
		}
	}()
	// retry waits before attempt+1 of what failed, with fetching paused
	// and rebalances allowed; false (the buffer dropped) once ctx is done.
	retry := func(what string, attempt, rows int, err error) bool {
		d := s.cfg.backoff(attempt)
		s.log.Warn(what+"; retrying", "rows", rows, "attempt", attempt+1, "in", d, "err", err)
		if !paused {
			s.cl.PauseFetchTopics(s.st.Inputs...)
			paused = true
		}
		s.cl.AllowRebalance()
		if ctx.Err() != nil || pipelines.Sleep(ctx, d) != nil {
			s.log.Error("sink stopping with an unwritten batch; it will be read again", "rows", rows)
			s.reset()
			return false
		}
		return true
	}
	var rejected []pipelines.Rejected
	for attempt := 0; ; attempt++ {
		s.mu.Lock()
		batch := s.buf // the revoke callback replaces s.buf, never edits it
		s.mu.Unlock()
		if len(batch) == 0 {
			return // every buffered partition was revoked meanwhile
		}
		start := time.Now()
		rj, err := s.st.Write(wctx, batch)
		if err == nil {
			s.m.sinkWrites.WithLabelValues(s.st.Name, "ok").Inc()
			s.m.sinkSeconds.WithLabelValues(s.st.Name).Observe(time.Since(start).Seconds())
			s.m.sinkRows.WithLabelValues(s.st.Name).Add(float64(len(batch)))
			rejected = rj
			break
		}
		s.m.sinkWrites.WithLabelValues(s.st.Name, "error").Inc()
		if !retry("sink write failed", attempt, len(batch), err) {
			return
		}
	}
	for attempt := 0; len(rejected) > 0; attempt++ {
		err := s.deadLetters(wctx, rejected)
		if err == nil {
			break
		}
		if !retry("sink dead letters failed", attempt, s.buffered(), err) {
			return
		}
		rejected = s.owned(rejected)
	}
	// Commit the partitions still ours (no poll ran since the buffer was
	// filled, so the buffer holds exactly what was written, minus revoked
	// partitions). A rebalance during Write may still refuse this commit:
	// the batch is then written again by the partitions' next owner
	// (at-least-once).
	offsets := s.reset()
	var cerr error
	s.cl.CommitOffsetsSync(wctx, offsets, func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
		if err != nil {
			cerr = err
			return
		}
		for _, t := range resp.Topics {
			for _, p := range t.Partitions {
				if err := kerr.ErrorForCode(p.ErrorCode); err != nil && cerr == nil {
					cerr = fmt.Errorf("%s/%d: %w", t.Topic, p.Partition, err)
				}
			}
		}
	})
	if cerr != nil {
		s.log.Warn("sink commit failed; the batch may be written again", "err", cerr)
	}
}

// deadLetters produces the records Write rejected to the dead-letter topic
// and waits for the broker's acknowledgement (before the batch's offsets
// are committed, so none is lost).
func (s *sink) deadLetters(ctx context.Context, rejected []pipelines.Rejected) error {
	if len(rejected) == 0 {
		return nil
	}
	recs := make([]*kgo.Record, len(rejected))
	for i, rj := range rejected {
		r, err := deadLetterRecord(s.cfg, s.st.Name, rj.Record, rj.Code, rj.Err)
		if err != nil {
			return err
		}
		recs[i] = r
	}
	if err := s.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("dead letters: %w", err)
	}
	for _, rj := range rejected {
		s.m.dead.WithLabelValues(s.st.Name, rj.Code).Inc()
	}
	s.log.Warn("records dead-lettered", "records", len(rejected))
	return nil
}

// owned returns the rejected records of partitions still buffered: those of
// partitions revoked since the Write are left to their next owner, which
// writes them again and rejects them again.
func (s *sink) owned(rejected []pipelines.Rejected) []pipelines.Rejected {
	s.mu.Lock()
	defer s.mu.Unlock()
	var kept []pipelines.Rejected
	for _, rj := range rejected {
		if _, ok := s.offsets[rj.Record.Topic][rj.Record.Partition]; ok {
			kept = append(kept, rj)
		}
	}
	return kept
}

// reset empties the buffer and returns the offsets it covered.
func (s *sink) reset() map[string]map[int32]kgo.EpochOffset {
	s.mu.Lock()
	defer s.mu.Unlock()
	offs := s.offsets
	clear(s.buf)
	s.buf = s.buf[:0]
	s.offsets = map[string]map[int32]kgo.EpochOffset{}
	return offs
}

func itoa(p int32) string { return strconv.Itoa(int(p)) }
