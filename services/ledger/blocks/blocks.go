// Package blocks reads the ledger's book from the blocks topic: the
// ledger.BlockSource and ledger.LastBlockReader of the ledger stage and the
// CLI, and the follower of the proof API. It reads with the runtime's
// Reader (pipelines/kafka): read_committed, to the stable end or following,
// and connected like every client of the runtime (SASL, TLS). Every
// record is handed over with its offset, also one that does not decode:
// the reader skips and reports what does not extend the verified book
// (ledger.Book.ApplyRecord), and Alerts writes the dead letter of each.
package blocks

import (
	"cmp"
	"context"
	"fmt"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/ledger"
)

// Config configures a Reader.
type Config struct {
	// Kafka is how to reach the brokers (Brokers, ClientOptions). Its
	// Serde decodes the blocks (default single-object).
	Kafka kafka.Config
	// Topic is the blocks topic (default pipelines.TopicLedgerBlocks).
	Topic string
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if err := c.Kafka.Validate(); err != nil {
		return fmt.Errorf("ledger blocks: %w", err)
	}
	return nil
}

// Reader reads the blocks topic (partition 0). Each call reads with its
// own connection, so calls may run concurrently.
type Reader struct {
	cfg   kafka.Config
	serde *schemas.Serde
	topic string
}

// New returns a Reader; it connects on each call.
func New(cfg Config) (*Reader, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	serde := cfg.Kafka.Serde
	if serde == nil {
		serde = schemas.SingleObject()
	}
	return &Reader{cfg: cfg.Kafka, serde: serde, topic: cmp.Or(cfg.Topic, pipelines.TopicLedgerBlocks)}, nil
}

// Topic is the topic read.
func (r *Reader) Topic() string { return r.topic }

// Blocks calls fn for every committed record from offset 0 to the topic's
// stable end when called (a previous writer's in-flight transaction is
// seen whole or not at all): the block, or for a record that does not
// decode, why.
func (r *Reader) Blocks(ctx context.Context, fn func(ledger.Record) error) error {
	return r.read(func(kr *kafka.Reader) error {
		return kr.ReadAll(ctx, r.topic, 0, r.decoding(fn))
	})
}

// tailWindow is how far before the end Tail and LastBlock look:
// transaction markers follow each committed batch of records, so the last
// blocks the writer committed are within the last few offsets, unless
// someone else wrote after them.
const tailWindow = 64

// Tail returns the committed records of the last offsets of the topic
// (at most 64), in order; whole is true if they are the whole topic (it
// has no more than 64 offsets).
func (r *Reader) Tail(ctx context.Context) (recs []ledger.Record, whole bool, err error) {
	err = r.read(func(kr *kafka.Reader) error {
		end, err := kr.End(ctx, r.topic, 0)
		if err != nil {
			return err
		}
		from := max(0, end-tailWindow)
		whole = from == 0
		return kr.Read(ctx, r.topic, 0, from, end, r.decoding(func(rec ledger.Record) error {
			recs = append(recs, rec)
			return nil
		}))
	})
	return recs, whole, err
}

// LastBlock returns the last committed record that decodes as a block,
// or nil for an empty topic. It reads only the tail of the topic (Tail):
// if nothing there decodes, it is an error.
func (r *Reader) LastBlock(ctx context.Context) (*ledger.Block, error) {
	recs, _, err := r.Tail(ctx)
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	for i := len(recs) - 1; i >= 0; i-- {
		if recs[i].Block != nil {
			return recs[i].Block, nil
		}
	}
	return nil, fmt.Errorf("no block in the last %d records of %s", len(recs), r.topic)
}

// FollowRecords calls fn for every committed record from offset 0 on
// (Blocks) and keeps following the topic until ctx is done (then it
// returns nil) or fn fails. caught, if not nil, is called once, when the
// records committed when FollowRecords started have been read.
func (r *Reader) FollowRecords(ctx context.Context, fn func(ledger.Record) error, caught func()) error {
	return r.read(func(kr *kafka.Reader) error {
		return kr.Follow(ctx, r.topic, r.decoding(fn), caught)
	})
}

// Follow is FollowRecords for the records that decode as blocks: the
// others are passed over.
func (r *Reader) Follow(ctx context.Context, fn func(*ledger.Block) error, caught func()) error {
	return r.FollowRecords(ctx, func(rec ledger.Record) error {
		if rec.Block == nil {
			return nil
		}
		return fn(rec.Block)
	}, caught)
}

func (r *Reader) read(fn func(*kafka.Reader) error) error {
	kr, err := kafka.NewReader(r.cfg)
	if err != nil {
		return fmt.Errorf("ledger blocks: %w", err)
	}
	defer kr.Close()
	return fn(kr)
}

func (r *Reader) decoding(fn func(ledger.Record) error) func(pipelines.Record) error {
	return func(rec pipelines.Record) error {
		out := ledger.Record{Offset: rec.Offset, Key: rec.Key, Value: rec.Value}
		var b avro.LedgerBlock
		if err := r.serde.Unmarshal(rec.Value, &b); err != nil {
			out.Err = err
		} else if blk, err := ledger.BlockFromAvro(&b); err != nil {
			out.Err = err
		} else {
			out.Block = &blk
		}
		return fn(out)
	}
}
