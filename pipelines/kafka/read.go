package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/minecart/minecart/pipelines"
)

// Reader reads topics outside any consumer group, read_committed: the one
// "read to the stable end, then follow" of the runtime, used to restore a
// task's changelog, to fill a Table and to read the ledger's blocks. It
// connects like every client of the runtime (Config.ClientOptions: SASL,
// TLS). A Reader does one Read or Follow at a time.
//
// # How a read knows it reached the end
//
// A bounded read (Read, ReadAll, and the catch-up of Follow) trusts the
// fetch position, never the sight of a record at end-1. A read_committed
// fetch does not return every offset: records of aborted transactions are
// dropped by the client (the broker lists them in the response's
// AbortedTransactions), and a transaction that was neither committed nor
// aborted but sits below the last stable offset (kfake after a crash:
// docs/reliability.md, "Restarts, transactions and the dangling-tail
// stall") is dropped the same way with no control record after it. A
// reader that waits to see a record at or past end-1 then waits forever.
//
// franz-go's consumer does not expose its fetch position, so a bounded read
// issues its own Fetch requests (isolation read_committed, no fetch
// session) to the partition's leader and decodes each response with
// kgo.ProcessFetchPartition, the very function franz-go's consumer uses.
// ProcessFetchPartition returns the next offset to fetch: past every batch
// it decoded, kept or dropped (committed data, control batches, aborted
// batches alike). The read is done when that position reaches end. Since
// end is at most the last stable offset and the broker returns every batch
// below it, each fetch below end moves the position forward; the read
// never waits for a record that cannot come.
type Reader struct {
	cl  *kgo.Client
	adm *kadm.Client
	dec kgo.Decompressor

	mu    sync.Mutex
	parts map[string]partLeader // topic -> its id and partition leaders (fetch)
}

// partLeader is what a raw Fetch of a topic needs from metadata.
type partLeader struct {
	id      [16]byte
	leaders map[int32]int32
}

// fetchWait is how long the broker may hold a Fetch with no record ready
// (fetch.max.wait.ms): Apache Kafka's default, where franz-go's is 5 s.
// Used by the bounded reads, the Follow tail and the stages' consumers.
// On kfake a stage's fetch was seen to wait out the whole of it now and
// then although records were ready (docs/reliability.md), which, at 5 s,
// delayed restarts and could exceed scoring's idle timeout in tests.
const fetchWait = 500 * time.Millisecond

// NewReader connects a reader (lazily: the first call dials).
func NewReader(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(cfg.withDefaults().baseOpts(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records move the position past commit and abort
		// markers (Follow's tail uses franz-go's consumer).
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
		kgo.FetchMaxWait(fetchWait),
	)...)
	if err != nil {
		return nil, fmt.Errorf("reader: %w", err)
	}
	return &Reader{cl: cl, adm: kadm.NewClient(cl), dec: kgo.DefaultDecompressor(), parts: map[string]partLeader{}}, nil
}

// Close closes the reader's connections.
func (r *Reader) Close() { r.cl.Close() }

// End returns the end of topic/p for a read_committed reader: its last
// stable offset, once every transaction that was open when End was called
// has ended (so a previous writer's in-flight transaction is read whole or
// not at all).
func (r *Reader) End(ctx context.Context, topic string, p int32) (int64, error) {
	hwm, err := r.listOffset(ctx, r.adm.ListEndOffsets, topic, p)
	if err != nil {
		return 0, err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		lso, err := r.listOffset(ctx, r.adm.ListCommittedOffsets, topic, p)
		if err != nil {
			return 0, err
		}
		if lso >= hwm {
			return lso, nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-t.C:
		}
	}
}

func (r *Reader) listOffset(ctx context.Context, list func(context.Context, ...string) (kadm.ListedOffsets, error), topic string, p int32) (int64, error) {
	offs, err := list(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("list offsets %s: %w", topic, err)
	}
	o, ok := offs.Lookup(topic, p)
	if !ok {
		return 0, fmt.Errorf("list offsets %s: no partition %d", topic, p)
	}
	if o.Err != nil {
		return 0, fmt.Errorf("list offsets %s/%d: %w", topic, p, o.Err)
	}
	return o.Offset, nil
}

// Read calls fn, in offset order, for every committed data record of
// topic/p at offsets [from, end), then returns: once the fetch position
// reached end (Reader: records of aborted or never-ended transactions are
// skipped without waiting for anything past them). An error from fn stops
// the read and is returned with the record's offset.
func (r *Reader) Read(ctx context.Context, topic string, p int32, from, end int64, fn func(pipelines.Record) error) error {
	_, err := r.read(ctx, topic, p, from, end, false, fn)
	return err
}

// read fetches topic/p from `from` until the fetch position reaches end and
// returns that position (at or past end: a batch can straddle end). fn gets
// the committed data records below end, or, with past, every committed data
// record fetched (for Follow, which goes on from the position returned).
func (r *Reader) read(ctx context.Context, topic string, p int32, from, end int64, past bool, fn func(pipelines.Record) error) (int64, error) {
	pos := from
	for attempt := 0; pos < end; {
		if err := ctx.Err(); err != nil {
			return pos, err
		}
		fp, next, err := r.fetch(ctx, topic, p, pos)
		if err != nil {
			if ctx.Err() != nil {
				return pos, ctx.Err()
			}
			var oor *outOfRange
			switch {
			case errors.As(err, &oor) && oor.logStart > pos && oor.logStart <= end:
				// Deleted below the log start (retention,
				// DeleteRecords): what is left starts there.
				pos, attempt = oor.logStart, 0
				continue
			case errors.As(err, &oor):
				return pos, fmt.Errorf("read %s/%d at %d: %w", topic, p, pos, err)
			case isRetriable(err) && attempt < 30:
				// A broker restarting or a leader moving.
				attempt++
				r.forget(topic)
				if err := pipelines.Sleep(ctx, min(time.Duration(attempt)*100*time.Millisecond, 2*time.Second)); err != nil {
					return pos, err
				}
				continue
			default:
				return pos, fmt.Errorf("read %s/%d at %d: %w", topic, p, pos, err)
			}
		}
		attempt = 0
		for i := range fp.Records {
			kr := fp.Records[i]
			if kr.Offset < pos || kr.Attrs.IsControl() || (!past && kr.Offset >= end) {
				continue
			}
			if err := safely(func() error { return fn(fromKgo(kr)) }); err != nil {
				return pos, fmt.Errorf("%s/%d offset %d: %w", topic, p, kr.Offset, err)
			}
		}
		if next <= pos && fp.HighWatermark <= pos {
			// Below end, yet nothing at pos: end was above what
			// the partition holds now (the topic was recreated).
			return pos, fmt.Errorf("read %s/%d: end %d past the high watermark %d", topic, p, end, fp.HighWatermark)
		}
		if next <= pos {
			// Nothing decoded at pos although it is below the last
			// stable offset: not seen from a broker so far; pause
			// rather than spin.
			if err := pipelines.Sleep(ctx, 50*time.Millisecond); err != nil {
				return pos, err
			}
			continue
		}
		pos = next
	}
	return pos, nil
}

// outOfRange is a fetch below the log start or past the high watermark.
type outOfRange struct {
	logStart int64
	err      error
}

func (e *outOfRange) Error() string { return e.err.Error() }
func (e *outOfRange) Unwrap() error { return e.err }

func isRetriable(err error) bool {
	var ke *kerr.Error
	if errors.As(err, &ke) {
		return ke.Retriable || errors.Is(err, kerr.UnknownTopicOrPartition)
	}
	return !errors.Is(err, kgo.ErrClientClosed) // network errors
}

// fetch issues one read_committed Fetch of topic/p at pos to its leader and
// decodes it like franz-go's consumer: the records kept and the next offset
// to fetch (past every batch decoded, kept or dropped).
func (r *Reader) fetch(ctx context.Context, topic string, p int32, pos int64) (kgo.FetchPartition, int64, error) {
	pl, err := r.leader(ctx, topic)
	if err != nil {
		return kgo.FetchPartition{}, pos, err
	}
	leader, ok := pl.leaders[p]
	if !ok {
		return kgo.FetchPartition{}, pos, fmt.Errorf("topic %s has no partition %d: %w", topic, p, kerr.UnknownTopicOrPartition)
	}
	req := kmsg.NewPtrFetchRequest()
	req.ReplicaID = -1
	req.MaxWaitMillis = int32(fetchWait / time.Millisecond)
	req.MinBytes = 1
	req.MaxBytes = 64 << 20
	req.IsolationLevel = 1 // read_committed
	req.SessionID = 0
	req.SessionEpoch = -1 // a full fetch, no fetch session (KIP-227)
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic   // up to v12
	rt.TopicID = pl.id // v13+
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition = p
	rp.FetchOffset = pos
	rp.CurrentLeaderEpoch = -1
	rp.LogStartOffset = -1
	rp.PartitionMaxBytes = 16 << 20
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	kresp, err := r.cl.Broker(int(leader)).Request(ctx, req)
	if err != nil {
		return kgo.FetchPartition{}, pos, fmt.Errorf("fetch %s/%d: %w", topic, p, err)
	}
	resp := kresp.(*kmsg.FetchResponse)
	if err := kerr.ErrorForCode(resp.ErrorCode); err != nil {
		return kgo.FetchPartition{}, pos, fmt.Errorf("fetch %s/%d: %w", topic, p, err)
	}
	for i := range resp.Topics {
		for j := range resp.Topics[i].Partitions {
			rpp := &resp.Topics[i].Partitions[j]
			if rpp.Partition != p {
				continue
			}
			if err := kerr.ErrorForCode(rpp.ErrorCode); err != nil {
				if errors.Is(err, kerr.OffsetOutOfRange) {
					return kgo.FetchPartition{}, pos, &outOfRange{logStart: rpp.LogStartOffset, err: fmt.Errorf("fetch %s/%d at %d (log start %d, high watermark %d): %w", topic, p, pos, rpp.LogStartOffset, rpp.HighWatermark, err)}
				}
				return kgo.FetchPartition{}, pos, fmt.Errorf("fetch %s/%d: %w", topic, p, err)
			}
			fp, next := kgo.ProcessFetchPartition(kgo.ProcessFetchPartitionOpts{
				KeepControlRecords: true,
				Offset:             pos,
				IsolationLevel:     kgo.ReadCommitted(),
				Topic:              topic,
				Partition:          p,
			}, rpp, r.dec, nil)
			if fp.Err != nil {
				return fp, pos, fmt.Errorf("fetch %s/%d at %d: %w", topic, p, pos, fp.Err)
			}
			return fp, next, nil
		}
	}
	return kgo.FetchPartition{}, pos, fmt.Errorf("fetch %s/%d: partition missing from the response: %w", topic, p, kerr.UnknownTopicOrPartition)
}

// leader returns topic's id and partition leaders, from metadata cached
// until forget.
func (r *Reader) leader(ctx context.Context, topic string) (partLeader, error) {
	r.mu.Lock()
	pl, ok := r.parts[topic]
	r.mu.Unlock()
	if ok {
		return pl, nil
	}
	md, err := r.adm.Metadata(ctx, topic)
	if err != nil {
		return pl, fmt.Errorf("metadata %s: %w", topic, err)
	}
	td, ok := md.Topics[topic]
	if !ok {
		return pl, fmt.Errorf("metadata %s: %w", topic, kerr.UnknownTopicOrPartition)
	}
	if td.Err != nil {
		return pl, fmt.Errorf("metadata %s: %w", topic, td.Err)
	}
	pl = partLeader{id: td.ID, leaders: map[int32]int32{}}
	for _, pd := range td.Partitions {
		if pd.Err == nil && pd.Leader >= 0 {
			pl.leaders[pd.Partition] = pd.Leader
		}
	}
	r.mu.Lock()
	r.parts[topic] = pl
	r.mu.Unlock()
	return pl, nil
}

func (r *Reader) forget(topic string) {
	r.mu.Lock()
	delete(r.parts, topic)
	r.mu.Unlock()
}

// ReadAll reads topic/p from its start to its End.
func (r *Reader) ReadAll(ctx context.Context, topic string, p int32, fn func(pipelines.Record) error) error {
	end, err := r.End(ctx, topic, p)
	if err != nil {
		return err
	}
	return r.Read(ctx, topic, p, 0, end, fn)
}

// Ends returns the last stable offset of every partition of topic: where a
// read_committed read of each partition ends now. A topic that does not
// exist or that the client may not describe is an error.
func (r *Reader) Ends(ctx context.Context, topic string) (map[int32]int64, error) {
	offs, err := r.adm.ListCommittedOffsets(ctx, topic)
	if err == nil {
		err = offs.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("end offsets %s: %w", topic, err)
	}
	ends := map[int32]int64{}
	offs.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	return ends, nil
}

// Behind counts the committed records, time marks aside, that group's
// committed offsets leave below ends (per topic, per partition: offsets
// from Ends). A partition without a committed offset counts from 0. The
// records are counted with bounded reads (Read), so a transactional tail,
// whose marker no consumer reads, is no backlog and nothing waits for a
// record that cannot come.
func (r *Reader) Behind(ctx context.Context, group string, ends map[string]map[int32]int64) (int, error) {
	committed, err := r.adm.FetchOffsets(ctx, group)
	if err != nil {
		return 0, fmt.Errorf("offsets of group %s: %w", group, err)
	}
	n := 0
	for topic, parts := range ends {
		for p, end := range parts {
			from := int64(0)
			if o, ok := committed.Lookup(topic, p); ok && o.Err == nil {
				from = o.At
			}
			if from >= end {
				continue
			}
			if err := r.Read(ctx, topic, p, from, end, func(rec pipelines.Record) error {
				if !pipelines.IsMark(&rec) {
					n++
				}
				return nil
			}); err != nil {
				return 0, err
			}
		}
	}
	return n, nil
}

// Follow calls fn for every committed data record of every partition of
// topic from its start, in offset order within a partition, and keeps
// following the topic until ctx is done (it then returns nil) or fn fails.
// caught, if not nil, is called once, when every partition has been read up
// to the last stable offset it had when Follow started (Ends).
func (r *Reader) Follow(ctx context.Context, topic string, fn func(pipelines.Record) error, caught func()) error {
	ends, err := r.Ends(ctx, topic)
	if err != nil {
		return fmt.Errorf("follow: %w", err)
	}
	return r.follow(ctx, topic, ends, fn, caught)
}

// follow is Follow from ends, the topic's Ends. It first reads every
// partition up to its end with bounded reads (Read: the fetch position
// decides, so an aborted or dangling tail cannot hold caught back), calls
// caught, then follows every partition from the position reached with
// franz-go's consumer.
func (r *Reader) follow(ctx context.Context, topic string, ends map[int32]int64, fn func(pipelines.Record) error, caught func()) error {
	start := map[int32]kgo.Offset{}
	for _, p := range sortedKeys(ends) {
		pos, err := r.read(ctx, topic, p, 0, ends[p], true, fn)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return fmt.Errorf("follow %s: %w", topic, err)
		}
		start[p] = kgo.NewOffset().At(pos)
	}
	if caught != nil {
		caught()
	}
	r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	defer r.cl.RemoveConsumePartitions(map[string][]int32{topic: keys(start)})
	for {
		fs := r.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fatalFetchErr(fs); err != nil {
			return fmt.Errorf("follow %s: %w", topic, err)
		}
		var ferr error
		fs.EachRecord(func(kr *kgo.Record) {
			if ferr != nil || kr.Topic != topic || kr.Attrs.IsControl() {
				return
			}
			if err := safely(func() error { return fn(fromKgo(kr)) }); err != nil {
				ferr = fmt.Errorf("%s/%d offset %d: %w", topic, kr.Partition, kr.Offset, err)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
}

// fatalFetchErr is the first fetch error a read cannot go on after (the
// client closed); others (a broker restarting) are retried by the client.
func fatalFetchErr(fs kgo.Fetches) error {
	var fatal error
	fs.EachError(func(_ string, _ int32, err error) {
		if fatal == nil && errors.Is(err, kgo.ErrClientClosed) {
			fatal = err
		}
	})
	return fatal
}

func keys[V any](m map[int32]V) []int32 {
	ps := make([]int32, 0, len(m))
	for p := range m {
		ps = append(ps, p)
	}
	return ps
}

func sortedKeys[V any](m map[int32]V) []int32 {
	ps := keys(m)
	slices.Sort(ps)
	return ps
}
