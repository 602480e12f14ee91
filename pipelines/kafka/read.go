package kafka

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
)

// Reader reads topics outside any consumer group, read_committed: the one
// "read to the stable end, then follow" of the runtime, used to restore a
// task's changelog, to fill a Table and to read the ledger's blocks. It
// connects like every client of the runtime (Config.ClientOptions: SASL,
// TLS). A Reader does one Read or Follow at a time.
type Reader struct {
	cl  *kgo.Client
	adm *kadm.Client
}

// NewReader connects a reader (lazily: the first call dials).
func NewReader(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(append(cfg.withDefaults().baseOpts(),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Control records move the position past commit and abort
		// markers: that is how a read knows it reached the end.
		kgo.KeepControlRecords(),
		kgo.FetchMaxBytes(64<<20),
	)...)
	if err != nil {
		return nil, fmt.Errorf("reader: %w", err)
	}
	return &Reader{cl: cl, adm: kadm.NewClient(cl)}, nil
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
// topic/p at offsets [from, end), then returns. An error from fn stops the
// read and is returned with the record's offset. A range that ends with
// aborted records whose abort marker lies past end (their transaction was
// aborted after another one began) returns once a record past end is
// readable.
func (r *Reader) Read(ctx context.Context, topic string, p int32, from, end int64, fn func(pipelines.Record) error) error {
	if from >= end {
		return nil
	}
	r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: {p: kgo.NewOffset().At(from)}})
	defer r.cl.RemoveConsumePartitions(map[string][]int32{topic: {p}})
	for pos := from; pos < end; {
		fs := r.cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fatalFetchErr(fs); err != nil {
			return err
		}
		var ferr error
		fs.EachRecord(func(kr *kgo.Record) {
			if ferr != nil || kr.Topic != topic || kr.Partition != p || kr.Offset < pos {
				return
			}
			if kr.Offset >= end {
				// Records come in offset order, so nothing before end
				// is left. Aborted records are never delivered: when
				// they end the range, only a record past it shows that
				// the read is done.
				pos = end
				return
			}
			pos = kr.Offset + 1
			if kr.Attrs.IsControl() {
				return
			}
			if err := safely(func() error { return fn(fromKgo(kr)) }); err != nil {
				ferr = fmt.Errorf("%s/%d offset %d: %w", topic, p, kr.Offset, err)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
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

// follow is Follow from ends, the topic's Ends.
func (r *Reader) follow(ctx context.Context, topic string, ends map[int32]int64, fn func(pipelines.Record) error, caught func()) error {
	target := map[int32]int64{}
	start := map[int32]kgo.Offset{}
	for p, end := range ends {
		start[p] = kgo.NewOffset().AtStart()
		if end > 0 {
			target[p] = end
		}
	}
	r.cl.AddConsumePartitions(map[string]map[int32]kgo.Offset{topic: start})
	defer r.cl.RemoveConsumePartitions(map[string][]int32{topic: keys(start)})
	if len(target) == 0 && caught != nil {
		caught()
		caught = nil
	}
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
			if ferr != nil || kr.Topic != topic {
				return
			}
			if end, ok := target[kr.Partition]; ok && kr.Offset+1 >= end {
				delete(target, kr.Partition)
			}
			if kr.Attrs.IsControl() {
				return
			}
			if err := safely(func() error { return fn(fromKgo(kr)) }); err != nil {
				ferr = fmt.Errorf("%s/%d offset %d: %w", topic, kr.Partition, kr.Offset, err)
			}
		})
		if ferr != nil {
			return ferr
		}
		if len(target) == 0 && caught != nil {
			caught()
			caught = nil
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
