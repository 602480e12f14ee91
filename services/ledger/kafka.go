package ledger

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
)

// KafkaBlocks reads the blocks topic (partition 0, read_committed) with
// franz-go. It is the BlockSource of the ledger stage, the Reader and the
// CLI; nothing else in this package talks to Kafka.
type KafkaBlocks struct {
	Brokers []string
	Topic   string // default pipelines.TopicLedgerBlocks
	Serde   *schemas.Serde
	// ClientOptions are appended to the client's options (TLS, SASL, ...).
	ClientOptions []kgo.Opt
}

func (k *KafkaBlocks) topic() string {
	if k.Topic == "" {
		return pipelines.TopicLedgerBlocks
	}
	return k.Topic
}

func (k *KafkaBlocks) client() (*kgo.Client, error) {
	return k.clientAt(kgo.NewOffset().AtStart())
}

func (k *KafkaBlocks) clientAt(start kgo.Offset) (*kgo.Client, error) {
	if len(k.Brokers) == 0 || k.Serde == nil {
		return nil, errors.New("ledger blocks reader: brokers and serde required")
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{k.topic(): {0: start}}),
		kgo.FetchMaxBytes(64 << 20),
	}, k.ClientOptions...)
	return kgo.NewClient(opts...)
}

// Blocks calls fn for every committed block from offset 0 to the topic's
// end when called. The end is the last stable offset once every
// transaction open at the start has ended, so a previous writer's
// in-flight block is either seen whole or not at all.
func (k *KafkaBlocks) Blocks(ctx context.Context, fn func(*Block) error) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	end, err := stableEnd(ctx, kadm.NewClient(cl), k.topic())
	if err != nil || end == 0 {
		return err
	}
	var pos int64
	for pos < end {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fatalFetchErr(fs); err != nil {
			return err
		}
		var ferr error
		fs.EachRecord(func(r *kgo.Record) {
			if ferr != nil || r.Offset >= end {
				return
			}
			pos = r.Offset + 1
			if !r.Attrs.IsControl() {
				ferr = k.decode(r, fn)
			}
		})
		if ferr != nil {
			return ferr
		}
	}
	return nil
}

// LastBlock returns the last committed block, or nil for an empty topic.
// It reads only the tail of the topic.
func (k *KafkaBlocks) LastBlock(ctx context.Context) (*Block, error) {
	adm, err := k.client()
	if err != nil {
		return nil, err
	}
	end, err := stableEnd(ctx, kadm.NewClient(adm), k.topic())
	adm.Close()
	if err != nil || end == 0 {
		return nil, err
	}
	// The last data record is within the last few offsets: transaction
	// markers follow each committed batch of records.
	from := max(0, end-64)
	cl, err := k.clientAt(kgo.NewOffset().At(from))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	var last *kgo.Record
	for pos := from; pos < end; {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := fatalFetchErr(fs); err != nil {
			return nil, err
		}
		fs.EachRecord(func(r *kgo.Record) {
			if r.Offset >= end {
				return
			}
			pos = r.Offset + 1
			if !r.Attrs.IsControl() {
				last = r
			}
		})
	}
	if last == nil {
		return nil, fmt.Errorf("no block in the last %d offsets of %s", end-from, k.topic())
	}
	var blk *Block
	err = k.decode(last, func(b *Block) error { blk = b; return nil })
	return blk, err
}

// Follow calls fn for every committed block from offset 0 on, and keeps
// following the topic until ctx is done or fn fails. caught, if not nil,
// is called each time the reader has consumed everything committed.
func (k *KafkaBlocks) Follow(ctx context.Context, fn func(*Block) error, caught func()) error {
	cl, err := k.client()
	if err != nil {
		return err
	}
	defer cl.Close()
	if caught != nil {
		if end, err := stableEnd(ctx, kadm.NewClient(cl), k.topic()); err == nil && end == 0 {
			caught() // an empty book is read at once
		}
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err := fatalFetchErr(fs); err != nil {
			return err
		}
		var ferr error
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			for _, r := range p.Records {
				if ferr == nil && !r.Attrs.IsControl() {
					ferr = k.decode(r, fn)
				}
			}
			if caught != nil && ferr == nil && len(p.Records) > 0 && p.Records[len(p.Records)-1].Offset+1 >= p.LastStableOffset {
				caught()
			}
		})
		if ferr != nil {
			return ferr
		}
	}
}

func (k *KafkaBlocks) decode(r *kgo.Record, fn func(*Block) error) error {
	native, err := k.Serde.DecodeAs(schemas.LedgerBlock, r.Value)
	if err != nil {
		return fmt.Errorf("blocks topic offset %d: %w", r.Offset, err)
	}
	blk, err := BlockFromNative(native)
	if err != nil {
		return fmt.Errorf("blocks topic offset %d: %w", r.Offset, err)
	}
	return fn(&blk)
}

func fatalFetchErr(fs kgo.Fetches) error {
	var fatal error
	fs.EachError(func(_ string, _ int32, err error) {
		if fatal == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
			fatal = err
		}
	})
	return fatal
}

// stableEnd returns the last stable offset of topic/0 once no transaction
// open when it was called is still open.
func stableEnd(ctx context.Context, adm *kadm.Client, topic string) (int64, error) {
	offset := func(list func(context.Context, ...string) (kadm.ListedOffsets, error)) (int64, error) {
		offs, err := list(ctx, topic)
		if err != nil {
			return 0, fmt.Errorf("list offsets %s: %w", topic, err)
		}
		o, ok := offs.Lookup(topic, 0)
		if !ok {
			return 0, fmt.Errorf("list offsets %s: no partition 0", topic)
		}
		if o.Err != nil {
			return 0, fmt.Errorf("list offsets %s: %w", topic, o.Err)
		}
		return o.Offset, nil
	}
	hwm, err := offset(adm.ListEndOffsets)
	if err != nil {
		return 0, err
	}
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		lso, err := offset(adm.ListCommittedOffsets)
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
