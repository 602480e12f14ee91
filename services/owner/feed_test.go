package owner_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
	"github.com/minecart/minecart/services/owner"
	"github.com/minecart/minecart/services/owner/view"
	"github.com/minecart/minecart/services/telemetry/wire"
)

// TestFeedRecords: bad records are skipped and counted, never an error
// (the sink dead-letters them; a partition is never blocked); a score the
// sink refuses (a count outside uint32) is skipped too; time marks and
// watermarks are no data; a partition whose first record is past offset 0
// (retention moved its log start) bounds what the view covers.
func TestFeedRecords(t *testing.T) {
	serde := schemas.SingleObject()
	codec, err := wire.NewCodec(serde)
	if err != nil {
		t.Fatal(err)
	}
	v := view.New(view.Config{})
	reg := prometheus.NewRegistry()
	clock := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	f, err := owner.NewFeed(owner.FeedConfig{View: v, Serde: serde, Registerer: reg, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	ev := viewEvent("feed-1", "dev-1", clock.Add(-time.Hour).UnixMilli(), 1)
	good := pipelines.Record{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 0, Value: codec.AppendEvent(nil, &ev), Timestamp: clock}
	for _, r := range []pipelines.Record{
		{Topic: pipelines.TopicTelemetryClean, Partition: 1, Offset: 5, Value: []byte("not avro"), Timestamp: clock.Add(-2 * time.Hour)},
		{Topic: pipelines.TopicTelemetryClean, Partition: 0, Offset: 0, Value: nil, Headers: pipelines.MarkHeaders()},
		good,
	} {
		if err := f.Telemetry(r); err != nil {
			t.Fatalf("offset %d: %v", r.Offset, err)
		}
	}
	bad := func(topic string) float64 {
		return testutil.ToFloat64(prometheusCounter(t, reg, "minecart_owner_view_bad_records_total", topic))
	}
	if n := bad(pipelines.TopicTelemetryClean); n != 1 {
		t.Errorf("bad telemetry records %v, want 1", n)
	}
	v.MarkCaught(true)
	v.MarkCaught(false)
	v.MarkErasuresCaught()
	if _, ok := v.Position("feed-1"); !ok {
		t.Error("the good event is not in the view")
	}
	// Partition 1 started at offset 5, written 2 h ago: tracks from before
	// that plus the 1 h margin are not covered.
	if _, _, _, st := v.Track(nil, "feed-1", clock.Add(-90*time.Minute).UnixMilli(), clock.UnixMilli(), clock); st != view.OutOfRange {
		t.Errorf("track before the retention bound: %v", st)
	}
	if _, _, _, st := v.Track(nil, "feed-1", clock.Add(-time.Hour+time.Millisecond).UnixMilli(), clock.UnixMilli(), clock); st != view.Covered {
		t.Errorf("track after the retention bound: %v", st)
	}

	s := viewScore("feed-1", clock.Truncate(24*time.Hour).AddDate(0, 0, -1), 3)
	s.DrivingS = -1 // the sink refuses it
	refused, err := serde.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []pipelines.Record{
		{Topic: pipelines.TopicScores, Offset: 0, Value: []byte{0xc3, 0x01, 1, 2}},
		{Topic: pipelines.TopicScores, Offset: 1, Value: refused},
	} {
		if err := f.Scores(r); err != nil {
			t.Fatalf("offset %d: %v", r.Offset, err)
		}
	}
	if n := bad(pipelines.TopicScores); n != 2 {
		t.Errorf("bad score records %v, want 2", n)
	}
	if st := v.Stats(); st.Scores != 0 {
		t.Errorf("%d scores kept, want 0", st.Scores)
	}

	// The ledger's requests: an undecodable record is counted, a debit
	// changes nothing, the vehicle's erasure drops it from the view.
	req := func(r *avro.DebitRequest) []byte {
		b, err := serde.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for i, val := range [][]byte{
		[]byte("not avro"),
		req(&avro.DebitRequest{RequestID: "d1", Kind: avro.RequestKindDebit, Account: "alice", VehicleID: "feed-1", RequestedAt: clock}),
	} {
		if err := f.Requests(pipelines.Record{Topic: pipelines.TopicLedgerRequests, Offset: int64(i), Value: val}); err != nil {
			t.Fatal(err)
		}
	}
	if n := bad(pipelines.TopicLedgerRequests); n != 1 {
		t.Errorf("bad request records %v, want 1", n)
	}
	if _, ok := v.Position("feed-1"); !ok {
		t.Fatal("a debit request dropped the vehicle")
	}
	erasure := req(&avro.DebitRequest{RequestID: "erasure/1", Kind: avro.RequestKindErasure, VehicleID: "feed-1", RequestedAt: clock})
	if err := f.Requests(pipelines.Record{Topic: pipelines.TopicLedgerRequests, Offset: 2, Value: erasure}); err != nil {
		t.Fatal(err)
	}
	if _, ok := v.Position("feed-1"); ok {
		t.Error("the erased vehicle's position is still in the view")
	}
}

func prometheusCounter(t *testing.T, reg *prometheus.Registry, name, topic string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" && l.GetValue() == topic {
					c := prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
					c.Add(m.GetCounter().GetValue())
					return c
				}
			}
		}
	}
	return prometheus.NewCounter(prometheus.CounterOpts{Name: "x"})
}
