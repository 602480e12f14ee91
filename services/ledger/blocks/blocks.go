// Package blocks reads the ledger's book from the blocks topic: the
// ledger.BlockSource and ledger.LastBlockReader of the ledger stage and the
// CLI, and the follower of the proof API. It reads with the runtime's
// Reader (pipelines/kafka): read_committed, to the stable end or following,
// and connected like every client of the runtime (SASL, TLS).
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

// Blocks calls fn for every committed block from offset 0 to the topic's
// stable end when called (a previous writer's in-flight transaction is
// seen whole or not at all).
func (r *Reader) Blocks(ctx context.Context, fn func(*ledger.Block) error) error {
	return r.read(func(kr *kafka.Reader) error {
		return kr.ReadAll(ctx, r.topic, 0, r.decoding(fn))
	})
}

// lastBlockWindow is how far before the end LastBlock looks: transaction
// markers follow each committed batch of records, so the last block is
// within the last few offsets.
const lastBlockWindow = 64

// LastBlock returns the last committed block, or nil for an empty topic.
// It reads only the tail of the topic.
func (r *Reader) LastBlock(ctx context.Context) (*ledger.Block, error) {
	var last *ledger.Block
	err := r.read(func(kr *kafka.Reader) error {
		end, err := kr.End(ctx, r.topic, 0)
		if err != nil || end == 0 {
			return err
		}
		from := max(0, end-lastBlockWindow)
		if err := kr.Read(ctx, r.topic, 0, from, end, r.decoding(func(b *ledger.Block) error { last = b; return nil })); err != nil {
			return err
		}
		if last == nil {
			return fmt.Errorf("no block in the last %d offsets of %s", end-from, r.topic)
		}
		return nil
	})
	return last, err
}

// Follow calls fn for every committed block from offset 0 on and keeps
// following the topic until ctx is done (then it returns nil) or fn
// fails. caught, if not nil, is called once, when the blocks committed
// when Follow started have been read.
func (r *Reader) Follow(ctx context.Context, fn func(*ledger.Block) error, caught func()) error {
	return r.read(func(kr *kafka.Reader) error {
		return kr.Follow(ctx, r.topic, r.decoding(fn), caught)
	})
}

func (r *Reader) read(fn func(*kafka.Reader) error) error {
	kr, err := kafka.NewReader(r.cfg)
	if err != nil {
		return fmt.Errorf("ledger blocks: %w", err)
	}
	defer kr.Close()
	return fn(kr)
}

func (r *Reader) decoding(fn func(*ledger.Block) error) func(pipelines.Record) error {
	return func(rec pipelines.Record) error {
		var b avro.LedgerBlock
		if err := r.serde.Unmarshal(rec.Value, &b); err != nil {
			return err
		}
		blk, err := ledger.BlockFromAvro(&b)
		if err != nil {
			return err
		}
		return fn(&blk)
	}
}
