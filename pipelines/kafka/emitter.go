package kafka

import (
	"context"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
)

// explicitPartition marks records emitted with EmitTo: the partitioner
// keeps their Partition field instead of hashing the key.
var explicitPartition = context.WithValue(context.Background(), explicitKey{}, true)

type explicitKey struct{}

// partitioner hashes keys like Kafka's Java client (murmur2, sticky for nil
// keys) except for EmitTo records, which carry their partition.
type partitioner struct{ keyed kgo.Partitioner }

func newPartitioner() kgo.Partitioner {
	return partitioner{keyed: kgo.StickyKeyPartitioner(nil)}
}

func (p partitioner) ForTopic(t string) kgo.TopicPartitioner {
	return &topicPartitioner{keyed: p.keyed.ForTopic(t)}
}

type topicPartitioner struct{ keyed kgo.TopicPartitioner }

func (t *topicPartitioner) RequiresConsistency(r *kgo.Record) bool {
	return r.Context == explicitPartition || t.keyed.RequiresConsistency(r)
}

func (t *topicPartitioner) Partition(r *kgo.Record, n int) int {
	if r.Context == explicitPartition {
		return int(r.Partition)
	}
	return t.keyed.Partition(r, n)
}

func (t *topicPartitioner) OnNewBatch() {
	if nb, ok := t.keyed.(kgo.TopicPartitionerOnNewBatch); ok {
		nb.OnNewBatch()
	}
}

// emitter buffers what a processor emits for one record (or one Tick or
// Flush), so that it can be dropped if the call fails.
type emitter struct {
	recs []*kgo.Record
}

func (e *emitter) Emit(topic string, key, value []byte, headers ...pipelines.Header) {
	e.recs = append(e.recs, &kgo.Record{Topic: topic, Key: key, Value: value, Headers: kgoHeaders(headers)})
}

func (e *emitter) EmitTo(topic string, partition int32, key, value []byte, headers ...pipelines.Header) {
	e.recs = append(e.recs, &kgo.Record{
		Topic: topic, Partition: partition, Key: key, Value: value,
		Headers: kgoHeaders(headers), Context: explicitPartition,
	})
}

func (e *emitter) reset() {
	clear(e.recs)
	e.recs = e.recs[:0]
}
