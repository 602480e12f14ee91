package gateway

import (
	"context"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/minecart/minecart/pipelines"
	"github.com/minecart/minecart/pipelines/kafka/kafkatest"
	"github.com/minecart/minecart/schemas"
	"github.com/minecart/minecart/schemas/avro"
)

// TestAt: a partition without a mark follows the clock; a restarted
// gateway holds its last mark and catches up at the rate, never moving
// back and never past the clock.
func TestAt(t *testing.T) {
	const m = int64(time.Minute / time.Millisecond)
	for _, tc := range []struct {
		name             string
		base, start, now int64
		rate             float64
		want             int64
	}{
		{"unmarked partition", -1, 100 * m, 100 * m, 4, 100 * m},
		{"short pause: caught up at once", 99 * m, 100 * m, 100 * m, 4, 99 * m},
		{"short pause, a minute on", 99 * m, 100 * m, 101 * m, 4, 101 * m},
		{"outage of 3h: holds at restart", 0, 180 * m, 180 * m, 4, 0},
		{"outage of 3h: 4 min after 1 min", 0, 180 * m, 181 * m, 4, 4 * m},
		{"outage of 3h: 120 min after 30 min", 0, 180 * m, 210 * m, 4, 120 * m},
		{"outage of 3h: caught up after 60 min", 0, 180 * m, 240 * m, 4, 240 * m},
		{"outage of 3h: rate 2, caught up after 180 min", 0, 180 * m, 360 * m, 2, 360 * m},
		{"clock behind the last mark: hold", 500 * m, 100 * m, 200 * m, 4, 500 * m},
	} {
		if got := At(tc.base, tc.start, tc.now, tc.rate); got != tc.want {
			t.Errorf("%s: At(%d, %d, %d, %v) = %d, want %d", tc.name, tc.base, tc.start, tc.now, tc.rate, got, tc.want)
		}
	}
}

// rawMarks reads the raw topic back: per partition, its records as "m<ms>"
// for a mark (with "!" when leaving) or "e" for an event.
func rawMarks(t *testing.T, brokers []string, serde *schemas.Serde) map[int32][]string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	recs, err := kafkatest.ReadCommitted(ctx, brokers, pipelines.TopicTelemetryRaw)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32][]string{}
	for _, r := range recs {
		if !pipelines.IsMark(&r) {
			out[r.Partition] = append(out[r.Partition], "e")
			continue
		}
		var m avro.TimeMark
		if err := serde.Unmarshal(r.Value, &m); err != nil {
			t.Fatal(err)
		}
		if m.Partition != r.Partition || string(r.Key) != pipelines.MarkKeyPrefix+m.Gateway || m.Gateway != "gw-a" {
			t.Fatalf("mark %+v under key %q on partition %d", m, r.Key, r.Partition)
		}
		s := "m" + time.UnixMilli(m.TimeMs.UnixMilli()).UTC().Format("1504")
		if m.Leaving {
			s += "!"
		}
		out[r.Partition] = append(out[r.Partition], s)
	}
	return out
}

// TestMarker: the gateway writes one mark per partition when its clock
// moved, in order with the events it produced; a restarted gateway reads
// its last marks back and catches up from them at the rate; leaving marks
// end it.
func TestMarker(t *testing.T) {
	f := newFixture(t, nil)
	serde := schemas.SingleObject()
	ctx := context.Background()
	var clock atomic.Pointer[time.Time]
	set := func(tm time.Time) { clock.Store(&tm) }
	now := func() time.Time {
		if p := clock.Load(); p != nil {
			return *p
		}
		return time.Time{}
	}
	cfg := MarkConfig{ID: "gw-a", Clock: now, Partitions: pipelines.TelemetryPartitions}
	m, err := f.srv.NewMarker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Write(ctx); err != nil { // clock not started: nothing
		t.Fatal(err)
	}
	set(t0)
	for range 2 { // the second write finds the clock where it was: nothing
		if err := m.Write(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if r := f.post(t, "d1", f.hmacKey, jsonBody(t, events("", 3, 0)), nil, ""); r.status != http.StatusAccepted {
		t.Fatalf("batch: %d %+v", r.status, r.body)
	}
	set(t0.Add(time.Minute))
	if err := m.Write(ctx); err != nil {
		t.Fatal(err)
	}
	got := rawMarks(t, f.brokers, serde)
	if len(got) != pipelines.TelemetryPartitions {
		t.Fatalf("marks on %d partitions", len(got))
	}
	for p, recs := range got {
		want := []string{"m1200", "m1201"}
		if slices.Contains(recs, "e") {
			want = []string{"m1200", "e", "e", "e", "m1201"} // the events sit between the marks
		}
		if !slices.Equal(recs, want) {
			t.Fatalf("partition %d: %v, want %v", p, recs, want)
		}
	}

	// The gateway is down for three hours, then restarts: it finds 12:01
	// in the log and catches up at 4x.
	set(t0.Add(3 * time.Hour))
	m2, err := f.srv.NewMarker(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(m2.Marks(), slices.Repeat([]int64{t0.Add(time.Minute).UnixMilli()}, pipelines.TelemetryPartitions)) {
		t.Fatalf("read back %v", m2.Marks())
	}
	for _, step := range []time.Duration{0, time.Minute, 10 * time.Minute} {
		set(t0.Add(3*time.Hour + step))
		if err := m2.Write(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if err := m2.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	got = rawMarks(t, f.brokers, serde)
	for p, recs := range got {
		tail := recs[len(recs)-3:]
		// 12:01 + 4 x 1 min = 12:05; + 4 x 10 min = 12:41; leaving at 12:41.
		if want := []string{"m1205", "m1241", "m1241!"}; !slices.Equal(tail, want) {
			t.Fatalf("partition %d after restart: %v, want ... %v", p, recs, want)
		}
	}
}
