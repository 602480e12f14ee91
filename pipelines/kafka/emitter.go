package kafka

import (
	"context"
	"unsafe"

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
//
// The records and their headers are carved from slabs rather than
// allocated one by one (a few hundred records per allocation, about a
// third of the stage runtime's per-record allocations). A slab is never
// reused: franz-go keeps a record until its produce promise, the
// processor may keep what it emitted, and a slab is garbage once none of
// its records is referenced any more.
type emitter struct {
	recs []*kgo.Record
	slab []kgo.Record
	hdrs []kgo.RecordHeader
	// stream, set during Flush only, produces what Release hands over.
	stream func(*kgo.Record)
}

// Release (pipelines.Release) produces the records collected so far, when
// the runtime streams (Flush); otherwise they wait for the call's end.
func (e *emitter) Release() {
	if e.stream == nil {
		return
	}
	for _, r := range e.recs {
		e.stream(r)
	}
	e.reset()
}

// slabLen is the number of records (or headers) per slab allocation.
const slabLen = 256

func (e *emitter) Emit(topic string, key, value []byte, headers ...pipelines.Header) {
	r := e.record()
	r.Topic, r.Key, r.Value, r.Headers = topic, key, value, e.headers(headers)
	e.recs = append(e.recs, r)
}

func (e *emitter) EmitTo(topic string, partition int32, key, value []byte, headers ...pipelines.Header) {
	r := e.record()
	r.Topic, r.Partition, r.Key, r.Value, r.Headers, r.Context = topic, partition, key, value, e.headers(headers), explicitPartition
	e.recs = append(e.recs, r)
}

// record returns a zeroed record from the slab.
func (e *emitter) record() *kgo.Record {
	if len(e.slab) == cap(e.slab) {
		e.slab = make([]kgo.Record, 0, slabLen)
	}
	e.slab = e.slab[:len(e.slab)+1]
	return &e.slab[len(e.slab)-1]
}

// headers copies hs (the Header values, not the bytes they point to) into
// the header slab.
func (e *emitter) headers(hs []pipelines.Header) []kgo.RecordHeader {
	if len(hs) == 0 {
		return nil
	}
	if cap(e.hdrs)-len(e.hdrs) < len(hs) {
		e.hdrs = make([]kgo.RecordHeader, 0, max(slabLen, len(hs)))
	}
	start := len(e.hdrs)
	for _, h := range hs {
		e.hdrs = append(e.hdrs, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return e.hdrs[start:len(e.hdrs):len(e.hdrs)]
}

func (e *emitter) reset() {
	clear(e.recs)
	e.recs = e.recs[:0]
}

// inHeaders turns consumed records into pipelines.Records. The headers
// are not copied: pipelines.Header and kgo.RecordHeader are the same
// struct (the conversion below fails to compile otherwise), so a record's
// Headers is its kgo.Record's header array seen as []pipelines.Header,
// with its capacity cut to its length so that a processor appending to it
// gets a new array. The runtime never changes a consumed record's headers
// after the poll, and a processor may keep them.
type inHeaders struct{}

var _ = pipelines.Header(kgo.RecordHeader{})

func (inHeaders) record(r *kgo.Record) pipelines.Record {
	rec := pipelines.Record{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
	if n := len(r.Headers); n > 0 {
		rec.Headers = unsafe.Slice((*pipelines.Header)(unsafe.Pointer(unsafe.SliceData(r.Headers))), n)[:n:n]
	}
	return rec
}
