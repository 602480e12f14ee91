package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/minecart/minecart/pipelines"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Output is one record for Producer.ProduceBatch.
type Output struct {
	Topic      string
	Key, Value []byte
	Headers    []pipelines.Header
	// ToPartition, when set, writes the record to Partition instead of the
	// partition its key hashes to (the gateway's time marks go to every
	// partition of the raw topic).
	ToPartition bool
	Partition   int32
}

// Producer writes records for non-stage writers (the gateway, the CLI, HTTP
// APIs): acks=all, idempotent, partitioned by key with Kafka's murmur2 like
// the Java client. ProduceSync and ProduceBatch return only once the broker
// has confirmed every record, or the error that stopped it.
type Producer struct {
	cl *kgo.Client
}

// NewProducer connects a producer (lazily: the first produce dials).
func NewProducer(cfg Config) (*Producer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := append(cfg.baseOpts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(newPartitioner()), // murmur2 by key, or Output.Partition
		kgo.ProducerLinger(0),
		kgo.RecordDeliveryTimeout(30*time.Second),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &Producer{cl: cl}, nil
}

// ProduceSync writes one record and waits for the broker's acknowledgement.
func (p *Producer) ProduceSync(ctx context.Context, topic string, key, value []byte, headers ...pipelines.Header) error {
	r := &kgo.Record{Topic: topic, Key: key, Value: value, Headers: kgoHeaders(headers)}
	if err := p.cl.ProduceSync(ctx, r).FirstErr(); err != nil {
		return fmt.Errorf("produce to %s: %w", topic, err)
	}
	return nil
}

// ProduceBatch writes recs and waits until the broker acknowledged all of
// them. On error some records may have been written (each is idempotent,
// not the batch): callers that retry may write those again. Every record
// of a call carries the same timestamp (the call's start), and records
// whose Headers share one backing array (the gateway's device header)
// share one converted header slice: the records are built in one pooled
// array, not allocated one by one (ProduceSync returns only once franz-go
// has finished with every record, so the array is reused after).
func (p *Producer) ProduceBatch(ctx context.Context, recs []Output) error {
	if len(recs) == 0 {
		return nil
	}
	now := time.Now()
	rb := recordPool.Get().(*recordBufs)
	defer rb.put()
	backing := slices.Grow(rb.recs[:0], len(recs))[:len(recs)]
	rs := slices.Grow(rb.ptrs[:0], len(recs))[:len(recs)]
	rb.recs, rb.ptrs = backing, rs
	var lastIn []pipelines.Header
	var lastOut []kgo.RecordHeader
	for i, o := range recs {
		r := &backing[i]
		r.Topic, r.Key, r.Value, r.Timestamp = o.Topic, o.Key, o.Value, now
		if len(o.Headers) > 0 {
			if len(lastIn) != len(o.Headers) || &lastIn[0] != &o.Headers[0] {
				lastIn, lastOut = o.Headers, kgoHeaders(o.Headers)
			}
			r.Headers = lastOut
		}
		if o.ToPartition {
			r.Partition, r.Context = o.Partition, explicitPartition
		}
		rs[i] = r
	}
	var errs []error
	for _, res := range p.cl.ProduceSync(ctx, rs...) {
		if res.Err != nil {
			errs = append(errs, fmt.Errorf("produce to %s: %w", res.Record.Topic, res.Err))
			if len(errs) == 3 {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// recordBufs are ProduceBatch's pooled records.
type recordBufs struct {
	recs []kgo.Record
	ptrs []*kgo.Record
}

// maxPooledRecords bounds the records a pooled recordBufs keeps.
const maxPooledRecords = 4096

var recordPool = sync.Pool{New: func() any { return new(recordBufs) }}

func (rb *recordBufs) put() {
	if cap(rb.recs) > maxPooledRecords {
		return
	}
	clear(rb.recs[:cap(rb.recs)]) // let go of keys, values, headers and promises' state
	clear(rb.ptrs[:cap(rb.ptrs)])
	rb.recs, rb.ptrs = rb.recs[:0], rb.ptrs[:0]
	recordPool.Put(rb)
}

// Close waits for anything still buffered, then closes the connections.
func (p *Producer) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.cl.Flush(ctx)
	p.cl.Close()
	if err != nil {
		return fmt.Errorf("producer close: %w", err)
	}
	return nil
}

func kgoHeaders(hs []pipelines.Header) []kgo.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	out := make([]kgo.RecordHeader, len(hs))
	for i, h := range hs {
		out[i] = kgo.RecordHeader{Key: h.Key, Value: h.Value}
	}
	return out
}

func fromKgoHeaders(hs []kgo.RecordHeader) []pipelines.Header {
	if len(hs) == 0 {
		return nil
	}
	out := make([]pipelines.Header, len(hs))
	for i, h := range hs {
		out[i] = pipelines.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

func fromKgo(r *kgo.Record) pipelines.Record {
	return pipelines.Record{
		Topic:     r.Topic,
		Partition: r.Partition,
		Offset:    r.Offset,
		Key:       r.Key,
		Value:     r.Value,
		Headers:   fromKgoHeaders(r.Headers),
		Timestamp: r.Timestamp,
	}
}
