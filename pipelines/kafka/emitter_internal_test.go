package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/minecart/minecart/pipelines"
)

// TestEmitterSlabs: records and headers carved from the emitter's and the
// consumed records' slabs stay each their own across slab boundaries, a
// reused headers slice given to Emit does not change what was emitted,
// and a processor appending to a consumed record's Headers does not touch
// the next record's.
func TestEmitterSlabs(t *testing.T) {
	const n = 3*slabLen + 7
	var em emitter
	var all []*kgo.Record
	hdr := make([]pipelines.Header, 2)
	for i := 0; i < n; i++ {
		em.reset()
		hdr[0] = pipelines.Header{Key: "i", Value: []byte(fmt.Sprint(i))}
		hdr[1] = pipelines.Header{Key: "j", Value: []byte(fmt.Sprint(-i))}
		if i%2 == 0 {
			em.Emit("t", []byte(fmt.Sprint(i)), nil, hdr...)
		} else {
			em.EmitTo("t", int32(i), []byte(fmt.Sprint(i)), nil, hdr[:1]...)
		}
		if len(em.recs) != 1 {
			t.Fatalf("record %d: %d buffered", i, len(em.recs))
		}
		all = append(all, em.recs[0])
	}
	seen := map[*kgo.Record]bool{}
	for i, r := range all {
		if seen[r] {
			t.Fatalf("record %d shares its kgo.Record", i)
		}
		seen[r] = true
		want := 2 - i%2
		if string(r.Key) != fmt.Sprint(i) || len(r.Headers) != want || string(r.Headers[0].Value) != fmt.Sprint(i) ||
			(want == 2 && string(r.Headers[1].Value) != fmt.Sprint(-i)) {
			t.Fatalf("record %d: key %q headers %+v", i, r.Key, r.Headers)
		}
		if explicit := r.Context == explicitPartition; explicit != (i%2 == 1) || (explicit && r.Partition != int32(i)) {
			t.Fatalf("record %d: partition %d explicit %v", i, r.Partition, explicit)
		}
	}

	var in inHeaders
	var recs []pipelines.Record
	var krs []*kgo.Record
	for i := 0; i < n; i++ {
		// Two records sharing one header array (as a fetch could): a
		// processor appending to the first's must not touch the second's.
		both := []kgo.RecordHeader{{Key: "i", Value: []byte(fmt.Sprint(i))}, {Key: "k", Value: []byte("y")}}
		kr := &kgo.Record{Topic: "t", Offset: int64(i), Headers: both[:1]}
		rec := in.record(kr)
		rec.Headers = append(rec.Headers, pipelines.Header{Key: "x"}) // a processor's own use
		recs, krs = append(recs, rec), append(krs, kr)
		if both[1].Key != "k" {
			t.Fatalf("consumed record %d: appending to its Headers overwrote the array after them", i)
		}
	}
	for i, rec := range recs {
		if rec.Offset != int64(i) || len(rec.Headers) != 2 || string(rec.Header("i")) != fmt.Sprint(i) || rec.Headers[1].Key != "x" {
			t.Fatalf("consumed record %d: %+v", i, rec)
		}
		if len(krs[i].Headers) != 1 || krs[i].Headers[0].Key != "i" {
			t.Fatalf("consumed record %d: its kgo.Record's headers changed: %+v", i, krs[i].Headers)
		}
	}
	if rec := in.record(&kgo.Record{}); rec.Headers != nil {
		t.Fatalf("no headers: %+v", rec.Headers)
	}
}
